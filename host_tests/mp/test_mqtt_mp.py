# Runs under MicroPython (node tools/mp/run.mjs): the pure parts of the MQTT
# output. No sockets here: packets, Home Assistant payloads, the outbox ring,
# MqttService.offer() (intake: interval, exact state JSON, per-value topics),
# and the flash spool imported only when it is needed and dropped after.
import json
import os
import sys
from binascii import crc32

from hub import Hub, Sample
from net import ha, mqtt, mqtt_rare
from net.mqtt_client import MqttService
from net.mqtt_setup import outbox
from p1.body import Encoder
from p1.bodyread import items
from p1.framer import Framer
from p1.jsonout import dumps
from p1.parse import parse
from p1.readings import readings

failures = 0
count = 0


def check(name, ok):
    global failures, count
    count += 1
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        failures += 1


def raises_oserror(f, *a):
    try:
        f(*a)
    except OSError:
        return True
    return False


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    return bytes(mqtt.publish_head(topic, len(payload), qos, retain, dup, pid)) + payload


check("on MicroPython", sys.implementation.name == "micropython")
check("spool not imported by the client", "net.spool" not in sys.modules)

# ---- packets ----
check("varlen 321", mqtt.packet(0x30, b"", 321) == b"\x30\xc1\x02")
check("connect", mqtt_rare.connect_packet("p1", 30) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02p1")
c = mqtt_rare.connect_packet("c", 60, "u", "pw", ("s", "offline", 1, True))
check("connect flags", c[9] == 0xEE)
check("connect tail", c.endswith(b"\x00\x01c\x00\x01s\x00\x07offline\x00\x01u\x00\x02pw"))
p = publish("a/b", b"xyz", 1, True, True, 10)
check("publish qos1 retain dup", p == bytes([0x3B, 10]) + b"\x00\x03a/b\x00\x0axyz")
check("publish utf-8 topic", publish("\u00e9", b"") == b"\x30\x04\x00\x02\xc3\xa9")
check("subscribe", mqtt_rare.subscribe_packet(1, [("x/#", 0)]) == b"\x82\x08\x00\x01\x00\x03x/#\x00")
check("decode publish", mqtt.decode(p[0], p[2:]) == (3, 10, "a/b", b"xyz"))
check(
    "refusal texts",
    mqtt_rare.refused(5) == "not authorized" and mqtt_rare.refused(1) == "unacceptable protocol version",
)
check("an unknown refusal", mqtt_rare.refused(9) == "refused (code 9)")
check("decode puback", mqtt.decode(0x40, b"\x01\x02")[:2] == (4, 258))
check("malformed publish", raises_oserror(mqtt.decode, 0x32, b"\x00\x01t\x00"))
check("short puback", raises_oserror(mqtt.decode, 0x40, b"\x00"))
check("bad topic", raises_oserror(mqtt.decode, 0x30, b"\x00\x02\xff\xfe"))

# ---- Home Assistant discovery for the E360 telegram ----
data = open("host_tests/telegrams/se-lg-e360-01.txt", "rb").read()
fr = Framer(3072)
fr.feed(data)
frame = fr.next_frame()
body, cut = Encoder().encode(bytes(frame))
reading = dict(items(body))
cfgs = {}
for topic, payload in ha.configs(body, "dev1", "p1/dev1", "homeassistant", "1.0"):
    cfgs[topic.split("/")[3]] = json.loads("".join(payload))  # (its pieces, written one by one)
names = [n for n, _ in items(body) if n != "meter"]
tariff = [n for n in cfgs if n.startswith("tariff_")]  # the tariff monitor's (docs/TARIFF.md)
hour = [n for n in cfgs if n.startswith("energy_hour_")]  # the history's last hour (docs/HISTORY.md)
check("one config per reading", sorted(n for n in cfgs if n not in tariff and n not in hour) == sorted(names))
check("five of the tariff monitor", len(tariff) == 5 and cfgs["tariff_power_w"]["state_topic"] == "p1/dev1/tariff")
check("two of the energy history", len(hour) == 2 and cfgs[hour[0]]["state_topic"] == "p1/dev1/energy/hour")
e = cfgs["energy_import_kwh"]
check(
    "energy config",
    (e["device_class"], e["unit_of_measurement"], e["state_class"], e["suggested_display_precision"])
    == ("energy", "kWh", "total_increasing", 3),
)
check("kvarh: no device class", "device_class" not in cfgs["reactive_energy_export_kvarh"])
q = cfgs["l1_reactive_power_export_kvar"]
check("kvar -> reactive_power in var", (q["device_class"], q["unit_of_measurement"]) == ("reactive_power", "var"))
check("voltage precision 1", cfgs["l2_voltage_v"]["suggested_display_precision"] == 1)
check("current", cfgs["l1_current_a"]["device_class"] == "current")
t = cfgs["timestamp"]
check("timestamp", t["device_class"] == "timestamp" and "state_class" not in t)
check("value_template", e["value_template"] == "{{ value_json.energy_import_kwh }}")
check("unique_id", e["unique_id"] == "dev1_energy_import_kwh")
check("device", e["device"]["manufacturer"] == "Landis+Gyr" and e["device"]["model"] == "E360")
check("manufacturer fallback", ha.manufacturer("ZZZ5abc") == "ZZZ")
check("model with \\2", ha.model("ISk5\\2MT382-1000") == "MT382-1000")
g = json.loads("".join(ha.sensor_config("gas_m3", reading["energy_import_kwh"], "d", "b", "{}")))
check("gas unit", (g["unit_of_measurement"], g["device_class"]) == ("m\u00b3", "gas"))
w = json.loads("".join(ha.sensor_config("water_m3", reading["energy_import_kwh"], "d", "b", "{}")))
check("water", (w["unit_of_measurement"], w["device_class"]) == ("m\u00b3", "water"))
heat = json.loads("".join(ha.sensor_config("heat_gj", reading["energy_import_kwh"], "d", "b", "{}")))
check("heat", heat["device_class"] == "energy")

# ---- the outbox ring ----
ob = outbox(3, max_inflight=2)
for i in range(5):
    ob.put(("t", str(i), False))
check("ring drops oldest", len(ob.ring) == 3 and ob.dropped == 2)
m1, p1 = ob.take(0)
m2, p2 = ob.take(0)
check("in order with pids", (m1[1], m2[1], p1, p2) == ("2", "3", 1, 2))
check("window full", ob.take(0) is None)
check("ack", ob.ack(2) == "t" and ob.ack(2) is None)
ob.qos = 0
check("qos0 take", ob.take(0) == (("t", "4", False), 0))

# ---- intake: exact state JSON, interval, per-value topics ----
hub = Hub()
cfg = {"enabled": True, "host": "h", "interval_s": 1, "per_value_topics": True, "buffer": 100}
svc = MqttService(hub, cfg, "dev1", "1.0", None)
check("topics", svc.state_topic == "p1/dev1/state" and svc.status()["client_id"] == "p1-dev1")
check("offer first", svc.offer(Sample(1, body, cut, data, 1000)))
check("offer within interval skipped", not svc.offer(Sample(2, body, cut, data, 1500)))
check("offer after interval", svc.offer(Sample(3, body, cut, data, 2000)))
ring = svc.outbox.ring
msg = ring.pop(0)
check("state payload is the telegram's one body", msg == ("p1/dev1/state", body, False) and msg[1] is body)
check("state payload is jsonout", body == dumps(readings(parse(frame, "ok"))).encode())
vals = {}
while ring and ring[0][0] != "p1/dev1/state":
    m = ring.pop(0)
    vals[m[0]] = m[1]
check("per-value exact", vals["p1/dev1/energy_import_kwh"] == b"896.020")
check("per-value voltage", vals["p1/dev1/l1_voltage_v"] == b"230.1")
st = svc.status()
check("status skipped", st["skipped"] == 1 and st["state"] == "disconnected")
check("no password in status", "password" not in st)

# ---- a new reading name calls for discovery ----
svc = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 100}, "dev1", "1.0", None)
svc.offer(Sample(1, body, cut, data, 0))
check("first reading: discovery due", svc._discover)
svc._discover = False
# what a discovery round leaves: 4 bytes of CRC per name (net.ha.announce)
svc._announced = b"".join([(crc32(n.encode()) & 0x3FFFFFFF).to_bytes(4, "little") for n, _ in items(body)])
svc.offer(Sample(2, body, cut, data, 0))
check("same names: none due", not svc._discover)
more = body[:-1] + b', "zz_new_kwh": 1.000}'
svc.offer(Sample(3, more, cut, data, 0))
check("one name more: due", svc._discover)
svc._discover = False
swapped = body.replace(b'"l1_voltage_v"', b'"l9_voltage_v"')
svc.offer(Sample(4, body, cut, data, 0))
svc.offer(Sample(5, swapped, cut, data, 0))
check("a name swapped for another: not seen at once", not svc._discover)
svc.offer(Sample(64, swapped, cut, data, 0))
check("... but within 64 telegrams", svc._discover)

# ---- the spool: imported when the ring first overflows, dropped once drained ----
try:
    os.mkdir("/tmp")
except OSError:
    pass
d = "/tmp/mqtt-lazy-spool"
os.mkdir(d)
cfg = {"enabled": True, "host": "h", "buffer": 2}
svc = MqttService(Hub(), cfg, "dev1", spool_dir=d)
for i in range(2):
    svc.offer(Sample(i + 1, body, cut, data, i * 1000))
check("ring not full: no spool module", "net.spool" not in sys.modules and svc.outbox.spool is None)
svc.offer(Sample(3, body, cut, data, 3000))
check("ring overflows: spool imported", "net.spool" in sys.modules and svc.status()["spooled"] == 1)
svc.offer(Sample(4, body, cut, data, 4000))
ob = svc.outbox
n = 0
while True:
    m = ob.take(0)
    if m is None:
        break
    ob.ack(m[1])
    n += 1
check("drained: spool closed and dropped", n == 4 and ob.spool is None and "net.spool" not in sys.modules)
check("drained: no spool files", os.listdir(d) == [])
for i in range(4):
    svc.offer(Sample(5 + i, body, cut, data, 5000 + i * 1000))  # an outage left 2 on flash
check("files left by an outage", len([f for f in os.listdir(d) if f.startswith("spool-")]) == 1)
del svc, ob, m
import mem  # noqa: E402

mem.unload("net.spool")  # the old run's code is gone with it (a reboot)
check("restart: nothing imported yet", "net.spool" not in sys.modules)
svc = MqttService(Hub(), cfg, "dev1", spool_dir=d)
check("restart with spool files: spool imported at start", "net.spool" in sys.modules)
check("restart: the spooled readings are there", svc.status()["spooled"] == 2)

# ---- a discovery round out of memory: counted, the session goes on, the round again later ----
import log  # noqa: E402

log.quiet = True


class Writer:
    """What the round writes to: MicroPython's stream, having taken everything."""

    out_buf = b""

    def __init__(self):
        self.data = []

    def write(self, b):  # (a str's bytes as they are, as a socket takes them)
        self.data.append(b.encode() if isinstance(b, str) else bytes(b))

    async def drain(self):
        pass

    def publishes(self):
        """Whole retained PUBLISH packets written, or -1 if the bytes end mid-packet
        or hold another packet."""
        b = b"".join(self.data)
        i = k = 0
        while i < len(b):
            if b[i] != 0x31:
                return -1
            n = shift = 0
            while True:  # the remaining length (MQTT's variable-length integer)
                i += 1
                n |= (b[i] & 0x7F) << shift
                shift += 7
                if not b[i] & 0x80:
                    break
            i += 1 + n
            k += 1
        return k if i == len(b) else -1


svc = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 100}, "dev1", "1.0", None)
svc.hub.sample = Sample(1, body, cut, data, 0)
svc._w = Writer()
real_configs = ha.configs


def short_of_memory(*a):
    for i, c in enumerate(real_configs(*a)):
        if i == 3:
            raise MemoryError("allocating 820 bytes")
        yield c


oom = log.memory_errors
ha.configs = short_of_memory
done = await ha.announce(svc)  # noqa: F704 - run.mjs runs this file with top-level await
ha.configs = real_configs
check("round out of memory: not done", done is False)
check("... counted", log.memory_errors == oom + 1)
check("... due again, not at once", svc._discover is True and svc._n[12] is not None and svc._announced == b"")
check("... 3 configs written, none cut", svc._w.publishes() == 3)
svc._w = Writer()
done = await ha.announce(svc)  # noqa: F704
wrote = svc._w.publishes()
check("the round again: done, every config and the emptied ones", done is True and wrote > 30)
svc._err = MemoryError("allocating 820 bytes")
wait = await mqtt_rare.end(svc, None, None, 1000)  # noqa: F704
check("a session out of memory: counted, the next login waits", log.memory_errors == oom + 2 and wait >= 10000)
check("... its error shown", "820" in svc.status()["last_error"])

print("%d passed, %d failed" % (count - failures, failures))
sys.exit(1 if failures else 0)
