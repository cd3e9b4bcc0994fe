"""What the MQTT client does once or on demand: set up, handle a command, stop.

`MqttService._rare()` imports this module for one such job and drops it after
(`mem.unload`), with the JSON writer it may have loaded. Apart from the login
(`net.mqtt_rare`), which comes again after every outage when the heap is
fullest: this code is not in RAM then. Each job is a function `job(svc, ...)`
of the service `svc` (an MqttService); `stop` is a coroutine.
"""

import os

from clock import ticks_ms
from net.mqtt import publish_head, write

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_NKEYS = const(19)  # keys of config.DEFAULTS["mqtt"]; fewer: a partial section (tests, tools)
# indexes of MqttService._n (see net.mqtt_client)
_CMD = const(3)
_BAD = const(4)


def init(svc, hub, cfg, device_id, version, spool_dir):
    """MqttService.__init__ (run once, so kept out of RAM after it)."""
    c = cfg or {}
    if len(c) < _NKEYS:  # a partial section (tests, tools): the config module's defaults
        from config import DEFAULTS

        c = dict(DEFAULTS["mqtt"])
        c.update(cfg or {})
    svc.cfg = c
    svc.hub = hub
    svc.device_id = device_id
    svc.version = version
    svc.base = c["base_topic"] or "p1/" + device_id
    svc.state_topic = svc.base + "/state"
    # `buffer` counts readings: each one is a state, plus a message per value
    # with per_value_topics and the telegram with raw_topic.
    n = 2 if c["raw_topic"] else 1
    if c["per_value_topics"]:  # one per named line of the OBIS table, and the M-Bus names
        from p1.obis import MBUS, T

        n += T.count(b"\n") - 1 - T.count(b" -\n") + 2 * len(MBUS)
    ob = svc.outbox = outbox(max(c["buffer"], 1) * n, svc.max_inflight, spool_dir, c["spill_kb"] * 1024)
    ob.qos = 1 if c["qos"] else 0
    svc._state = "disconnected" if c["enabled"] else "disabled"
    svc._last_error = ""
    svc.dropped = 0  # samples offer() lost to a MemoryError
    svc._n = [0, 0, 0, 0, 0, 0, 0, 0, ticks_ms(), 0, None, 0, None]  # _PUB .. _HOLD of net.mqtt_client
    # Reading names with a discovery config sent: 4 bytes of CRC each (the names
    # themselves are ~700 bytes for an E360).
    svc._announced = b""
    svc._discover = False  # a discovery round is due
    svc._w = None  # the connection's writer while logged in
    svc._err = None  # what ended the connection (from the reader or a write)
    svc._stopping = False  # set by stop(): run() ends
    # The TLS context, made for the first attempt and kept for every later one. It is
    # the one ~3 KB block a TLS connection needs (3048 bytes on the 64-bit Unix port;
    # the socket wrapped in it is ~0.6 KB of small ones) and stays allocated while a
    # session is up anyway. Made again for each attempt, it needed that block again:
    # under load, hours after boot, the heap had 15 KB free in all but no block that
    # large, and every attempt failed with "memory allocation failed, allocating 3048
    # bytes" -- MQTT stayed down for good (budget test at the limit).
    svc._ctx = None


def outbox(size, max_inflight=8, spool_dir=None, spool_limit=0):
    """A new net.mqtt_client.Outbox: a ring of `size` messages, at most `max_inflight`
    in flight; with `spool_dir` and `spool_limit` (bytes) the flash spool, opened at
    once when spool files of an earlier run are there."""
    from net.mqtt_client import Outbox

    ob = Outbox()
    ob.size = size
    ob.ring = []
    ob.inflight = []
    ob.max_inflight = max_inflight
    ob.qos = 1
    ob.dropped = ob.spool_dropped = ob.spool_errors = ob._pid = 0
    ob.spool = None
    ob.spool_at = (spool_dir, spool_limit) if spool_dir is not None and spool_limit > 0 else None
    if ob.spool_at is not None:
        try:
            names = os.listdir(spool_dir)
        except OSError:
            names = ()
        for n in names:
            if n.startswith("spool"):  # segments or a cursor of an earlier run
                from net.spool import Spool

                ob.spool = Spool(spool_dir, spool_limit)
                ob._commit()  # closes it again if it holds nothing
                break
    return ob


async def stop(svc):
    """MqttService.stop(): "offline" (retained), then DISCONNECT (the broker drops the
    will); run() ends."""
    svc._stopping = True
    w = svc._w
    svc._w = None
    if w is not None:
        try:
            head = publish_head(svc.base + "/status", 7, 0, True)
            await write(w, head, 1000, b"offline\xe0\x00")  # then DISCONNECT
        except Exception:  # noqa: BLE001
            pass
    svc._to("disconnected")


def command(svc, w, pid, topic, payload):
    """A PUBLISH from the broker on `w` (packet id `pid`, 0 for QoS 0): a command
    or Home Assistant's birth message. `<base>/set/status` is answered with the
    whole status JSON on `<base>/status/detail` (written to the stream, which
    sends or buffers it: the session loop drains it); `<base>/set/discovery` and
    HA's "online" call for a discovery round; `<base>/relay/<n>/set` overrides a
    relay (loadscold.command); anything else is counted bad."""
    if pid:  # PUBACK
        w.write(bytes((0x40, 2, pid >> 8, pid & 0xFF)))
    base = svc.base
    if topic == svc.cfg["discovery_prefix"] + "/status":
        if payload == b"online":
            svc._discover = True
            svc._announced = b""  # a full round (net.ha.announce)
        return
    ld = getattr(svc.hub, "loads", None)
    if ld is not None and topic.startswith(base + "/relay/") and topic.endswith("/set") and len(payload) <= 64:
        ok = ld.cold("command", topic[len(base) + 7 : -4], payload)  # "on", "off", "auto" [+ " <s>"]
        svc._n[_CMD if ok else _BAD] += 1
        return
    if len(payload) > 64 or topic not in (base + "/set/status", base + "/set/discovery"):
        svc._n[_BAD] += 1
        return
    svc._n[_CMD] += 1
    if topic.endswith("discovery"):
        svc._discover = True
        svc._announced = b""
        return
    from p1.jsonout import dumps

    payload = {}
    for name, fn in svc.hub.sections():  # every status section, as the status page shows them
        try:
            payload[name] = fn()
        except Exception as e:  # a broken section must not break status
            payload[name] = {"error": repr(e)}
    try:
        payload = dumps(payload)
    except Exception:  # a section that jsonout cannot write
        payload = dumps({"mqtt": svc.status()})
    payload = payload.encode()
    w.write(publish_head(base + "/status/detail", len(payload)))
    w.write(payload)
