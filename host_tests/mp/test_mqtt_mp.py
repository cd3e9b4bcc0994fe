# Runs under MicroPython (node tools/mp/run.mjs): the pure parts of the MQTT
# output. No sockets here: packets, Home Assistant payloads, the outbox ring,
# and MqttService.offer() (intake: interval, exact state JSON, per-value topics).
import json
import sys

from hub import Hub, Sample
from net import ha, mqtt
from net.mqtt_client import MqttService, Outbox
from p1.body import Encoder, items
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


check("on MicroPython", sys.implementation.name == "micropython")

# ---- packets ----
check("varlen 321", mqtt.varlen(321) == b"\xc1\x02")
check("decode_varlen", mqtt.decode_varlen(b"\xff\xff\xff\x7f") == (268435455, 4))
check("decode_varlen short", mqtt.decode_varlen(b"\x80") is None)
check("connect", mqtt.connect("p1", 30) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02p1")
c = mqtt.connect("c", 60, "u", "pw", ("s", "offline", 1, True))
check("connect flags", c[9] == 0xEE)
check("connect tail", c.endswith(b"\x00\x01c\x00\x01s\x00\x07offline\x00\x01u\x00\x02pw"))
p = mqtt.publish("a/b", b"xyz", 1, True, True, 10)
check("publish qos1 retain dup", p == bytes([0x3B, 10]) + b"\x00\x03a/b\x00\x0axyz")
check("publish str payload utf-8", mqtt.publish("t", "\u00e9") == b"\x30\x05\x00\x01t\xc3\xa9")
check("puback", mqtt.puback(0x1234) == b"\x40\x02\x12\x34")
check("subscribe", mqtt.subscribe(1, [("x/#", 0)]) == b"\x82\x08\x00\x01\x00\x03x/#\x00")
d = mqtt.decode(p[0], p[2:])
check(
    "decode publish",
    (d.type, d.topic, d.payload, d.qos, d.retain, d.dup, d.pid) == (mqtt.PUBLISH, "a/b", b"xyz", 1, True, True, 10),
)
d = mqtt.decode(0x20, b"\x00\x05")
check("decode connack refused", d.type == mqtt.CONNACK and d.rc == 5)
check("MQTTError text", str(mqtt.MQTTError(5)) == "not authorized")
check("MQTTError is OSError", isinstance(mqtt.MQTTError(4), OSError))
check("decode puback", mqtt.decode(0x40, b"\x01\x02").pid == 258)
check("malformed publish", raises_oserror(mqtt.decode, 0x32, b"\x00\x01t\x00"))
check("short connack", raises_oserror(mqtt.decode, 0x20, b"\x00"))

# ---- Home Assistant discovery for the E360 telegram ----
data = open("host_tests/telegrams/se-lg-e360-01.txt", "rb").read()
fr = Framer(3072)
fr.feed(data)
frame = fr.next_frame()
body, cut = Encoder().encode(bytes(frame))
reading = dict(items(body))
cfgs = {}
for topic, payload in ha.configs(body, "dev1", "p1/dev1", "homeassistant", "1.0"):
    cfgs[topic.split("/")[3]] = json.loads(payload)
names = [n for n, _ in items(body) if n != "meter"]
check("one config per reading", sorted(cfgs) == sorted(names))
e = cfgs["energy_import_kwh"]
check(
    "energy config",
    (e["device_class"], e["unit_of_measurement"], e["state_class"], e["suggested_display_precision"])
    == ("energy", "kWh", "total_increasing", 3),
)
check("kvarh -> reactive_energy", cfgs["reactive_energy_export_kvarh"]["device_class"] == "reactive_energy")
check("kvar -> reactive_power", cfgs["l1_reactive_power_export_kvar"]["device_class"] == "reactive_power")
check("voltage precision 1", cfgs["l2_voltage_v"]["suggested_display_precision"] == 1)
check("current", cfgs["l1_current_a"]["device_class"] == "current")
t = cfgs["timestamp"]
check("timestamp", t["device_class"] == "timestamp" and "state_class" not in t)
check("value_template", e["value_template"] == "{{ value_json.energy_import_kwh }}")
check("unique_id", e["unique_id"] == "dev1_energy_import_kwh")
check("device", e["device"]["manufacturer"] == "Landis+Gyr" and e["device"]["model"] == "E360")
check("manufacturer fallback", ha.manufacturer("ZZZ5abc") == "ZZZ")
check("model with \\2", ha.model("ISk5\\2MT382-1000") == "MT382-1000")
check(
    "gas unit",
    ha.sensor_config("gas_m3", reading["energy_import_kwh"], "d", "b", {})["unit_of_measurement"] == "m\u00b3",
)

# ---- the outbox ring ----
ob = Outbox(3, max_inflight=2)
for i in range(5):
    ob.put(("t", str(i), False))
check("ring drops oldest", len(ob) == 3 and ob.dropped == 2)
m1, p1 = ob.take(1, 0)
m2, p2 = ob.take(1, 0)
check("in order with pids", (m1[1], m2[1], p1, p2) == ("2", "3", 1, 2))
check("window full", ob.take(1, 0) is None)
check("overdue", [x[0] for x in ob.overdue(6000, 5000)] == [1, 2])
check("ack", ob.ack(2)[1] == "3" and ob.ack(2) is None)
check("qos0 take", ob.take(0, 0) == (("t", "4", False), 0))

# ---- intake: exact state JSON, interval, per-value topics ----
hub = Hub()
cfg = {"enabled": True, "host": "h", "interval_s": 1, "per_value_topics": True, "buffer": 100}
svc = MqttService(hub, cfg, "dev1", "1.0", None)
check("topics", svc.state_topic == "p1/dev1/state" and svc.client_id == "p1-dev1")
check("offer first", svc.offer(Sample(1, body, cut, data, 1000)))
check("offer within interval skipped", not svc.offer(Sample(2, body, cut, data, 1500)))
check("offer after interval", svc.offer(Sample(3, body, cut, data, 2000)))
msg = svc.outbox.ring.get_nowait()
check("state payload is the telegram's one body", msg == ("p1/dev1/state", body, False) and msg[1] is body)
check("state payload is jsonout", body == dumps(readings(parse(frame, "ok"))).encode())
vals = {}
while True:
    m = svc.outbox.ring.get_nowait()
    if m is None or m[0] == "p1/dev1/state":
        break
    vals[m[0]] = m[1]
check("per-value exact", vals["p1/dev1/energy_import_kwh"] == "896.020")
check("per-value voltage", vals["p1/dev1/l1_voltage_v"] == "230.1")
st = svc.status()
check("status skipped", st["skipped"] == 1 and st["state"] == "disconnected")
check("no password in status", "password" not in st)

print("%d passed, %d failed" % (count - failures, failures))
sys.exit(1 if failures else 0)
