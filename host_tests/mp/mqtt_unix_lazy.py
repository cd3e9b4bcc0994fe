# Runs under MicroPython's Unix port (real sockets, MicroPython's own ssl), driven by
# host_tests/test_mqtt_broker.py::test_micropython_tls_and_rare_code_dropped, against a real
# mosquitto with TLS:
#   micropython mqtt_unix_lazy.py PORT CA_FILE SPOOL_DIR TELEGRAM_FILE
# MqttService logs in over TLS (the CA file PEM -> DER), sends discovery, answers a
# status command, spools during a broker outage and drains afterwards; after each
# rare job its code (net.mqtt_rare, net.ha, the JSON writer, p1.table) is gone from
# sys.modules, and the spool module is there only from the first overflow until
# the spool is drained (nor kept as an attribute of its package). Prints one line per step ("STEP name"), which the test
# waits for before it acts on the broker, and "ok" or "FAIL ..." lines.
import asyncio
import os
import sys

from hub import Hub
from net.mqtt_client import MqttService
from p1.body import Encoder
from p1.framer import Framer

port, ca, spool_dir, telegram = sys.argv[1:5]
RARE = ("net.mqtt_rare", "net.mqtt_setup", "net.ha", "p1.jsonout", "p1.values", "p1.table", "p1.bodyread")
failures = 0


def check(name, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        failures += 1


def step(name):
    print("STEP " + name)


def loaded(*names):
    """Those of `names` still imported: in sys.modules, or kept as their package's attribute."""
    out = []
    for n in names:
        pkg, _, leaf = n.rpartition(".")
        if n in sys.modules or (pkg in sys.modules and hasattr(sys.modules[pkg], leaf)):
            out.append(n)
    return out


data = open(telegram, "rb").read()
fr = Framer(3072)
fr.feed(data)
frame = fr.next_frame()
body, cut = Encoder().encode(bytes(frame))


def reading(i):
    """The telegram's body with a time stamp of its own: the subscriber tells them apart."""
    return body.replace(b"16:19:00+", b"16:%02d:%02d+" % (i // 60, i % 60))


async def until(pred, what, timeout_s=30):
    for _ in range(timeout_s * 20):
        if pred():
            return True
        await asyncio.sleep_ms(50)
    check("in time: " + what + " " + repr(svc.status()), False)
    return False


hub = Hub()
cfg = {"enabled": True, "host": "127.0.0.1", "port": int(port), "tls": True, "ca": ca, "keepalive_s": 2, "buffer": 2}
svc = MqttService(hub, cfg, "mpdev", "0-mp", None, spool_dir=spool_dir)
svc.backoff_max_ms = 500
hub.add_status("mqtt", svc.status)
check("nothing rare imported with the client", loaded("net.spool", *RARE) == [])


async def main():
    task = asyncio.create_task(svc.run())
    n = 0
    if await until(lambda: svc.status()["state"] == "connected", "connected over TLS"):
        check("logged in: net.mqtt_rare dropped", loaded(*RARE) == [])
        check("TLS through the tls module: ssl.py (~1 KB) never imported", "ssl" not in sys.modules)
        step("connected")  # the test sends <base>/set/status now
        if await until(lambda: svc.status()["commands"] == 1, "status command"):
            await asyncio.sleep_ms(500)  # the answer goes out
            check("status answered: its code dropped", loaded(*RARE) == [])
        n += 1
        hub.publish(reading(n), cut, data)
        if await until(lambda: svc.status()["discovery_sent"] == 1 and svc.status()["published"] == 1, "discovery"):
            check("discovery sent: net.ha, the JSON writer, p1.table, p1.bodyread dropped", loaded(*RARE) == [])
        ctx = svc._ctx
        check("TLS context kept for the next session", ctx is not None)
        step("published")  # the test stops the broker now
        await until(lambda: svc.status()["state"] != "connected", "broker away", 60)
        check("ring not full yet: no spool", loaded("net.spool") == [] and svc.outbox.spool is None)
        for _ in range(8):  # a ring of 2: 6 go to flash
            n += 1
            hub.publish(reading(n), cut, data)
            await asyncio.sleep_ms(20)
        st = svc.status()
        check("ring overflowed: spool imported", loaded("net.spool") == ["net.spool"] and st["spooled"] == 6)
        step("spooled")  # the test starts the broker again
        done = lambda: svc.status()["published"] == n and svc.status()["queued"] == 0  # noqa: E731
        if await until(done, "drained", 60):
            st = svc.status()
            check("drained: spool dropped", loaded("net.spool") == [] and svc.outbox.spool is None)
            check("drained: no files, nothing lost", os.listdir(spool_dir) == [] and st["dropped"] == 0)
            # its ~3 KB block is not asked for again (a fragmented heap may not have one)
            check("reconnected with the same TLS context", svc._ctx is ctx)
            # discovery comes after the drain (its code and the spool's are never in RAM together)
            if await until(lambda: svc.status()["discovery_sent"] == 2, "discovery after the drain"):
                await asyncio.sleep_ms(100)
                check("rare code dropped after the reconnect", loaded(*RARE) == [])
    await svc.stop()
    task.cancel()
    step("end")


asyncio.run(main())
print("%d failed" % failures)
sys.exit(1 if failures else 0)
