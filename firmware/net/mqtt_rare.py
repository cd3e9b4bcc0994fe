"""What the MQTT client does rarely: set up, log in, handle a command.

`MqttService._rare()` imports this module for one such job and drops it after
(`mem.unload`), with the JSON writer it may have loaded: the constructor, the
TLS context, PEM -> DER, the CONNECT and SUBSCRIBE encoders, the CONNACK
reasons, the end of a session or attempt and the status answer cost RAM only
while they run (the status section itself is `net.mqtt_status`, smaller: the
status page asks for it every few seconds). Each job is a function `job(svc, ...)` of the service
`svc` (an MqttService); `connect` is a coroutine. (The discovery round, the
other rare job, is `net.ha.announce`.)
"""

import asyncio
import os

from clock import ticks_ms
from net.mqtt import packet, publish_head, read_packet, wait_ms, write

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_NKEYS = const(19)  # keys of config.DEFAULTS["mqtt"]; fewer: a partial section (tests, tools)
# indexes of MqttService._n (see net.mqtt_client)
_PUB = const(0)
_CONN = const(1)
_SKIP = const(2)
_CMD = const(3)
_BAD = const(4)
_DISC = const(5)
_RX = const(6)
_TX = const(7)
_SINCE = const(8)
_REFUSED = const(11)


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
    svc._n = [0, 0, 0, 0, 0, 0, 0, 0, ticks_ms(), 0, None, 0]  # _PUB .. _LAST of net.mqtt_client, _REFUSED
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


def refused(code):
    """The reason a broker refused a login with CONNACK return code `code`."""
    r = "unacceptable protocol version|client identifier rejected|server unavailable|bad user name or password"
    r = (r + "|not authorized").split("|")  # (one str object, not five)
    return r[code - 1] if 0 < code <= 5 else "refused (code %d)" % code


def field(buf, s):
    """Append a string field (2-byte length, then the UTF-8 bytes) to bytearray `buf`.
    Ours are far below the 64 KB a field can hold: config strings are at most 256 long."""
    if isinstance(s, str):
        s = s.encode()
    buf.append(len(s) >> 8)
    buf.append(len(s) & 0xFF)
    buf.extend(s)


def connect_packet(client_id, keepalive_s=30, user=None, password=None, will=None):
    """CONNECT with a clean session. `will` is None or (topic, payload, qos, retain)."""
    flags = 0x02
    body = bytearray(b"\x00\x04MQTT\x04")
    if will:
        flags |= 0x04 | (will[2] & 3) << 3 | (0x20 if will[3] else 0)
    if user:
        flags |= 0x80
        if password is not None:
            flags |= 0x40
    body.append(flags)
    body.append(keepalive_s >> 8 & 0xFF)
    body.append(keepalive_s & 0xFF)
    field(body, client_id)
    if will:
        field(body, will[0])
        field(body, will[1])
    if user:
        field(body, user)
        if password is not None:
            field(body, password)
    return packet(0x10, body)


def subscribe_packet(pid, topics):
    """SUBSCRIBE to a list of (topic filter, qos)."""
    body = bytearray((pid >> 8, pid & 0xFF))
    for topic, qos in topics:
        field(body, topic)
        body.append(qos)
    return packet(0x82, body)


def tls_context(ca, insecure):
    """An SSL context for the client side, on CPython or MicroPython."""
    try:
        import tls  # MicroPython >= 1.23: the module under its ssl.py, which would stay in RAM (~1 KB)
    except ImportError:  # CPython
        import ssl

        ctx = ssl.create_default_context(cafile=ca or None)  # pyright: ignore[reportAttributeAccessIssue]
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    # (verify_mode: an attribute the ESP32 stubs do not list)
    if insecure:
        ctx.verify_mode = tls.CERT_NONE  # pyright: ignore[reportAttributeAccessIssue]
        return ctx
    if not ca:
        raise OSError("TLS needs a CA file (mqtt.ca) or mqtt.insecure")
    ctx.verify_mode = tls.CERT_REQUIRED  # pyright: ignore[reportAttributeAccessIssue]
    with open(ca, "rb") as f:
        data = f.read()
    for der in der_certs(data):
        ctx.load_verify_locations(der)
    return ctx


def der_certs(data):
    """The certificates of a PEM file as DER (MicroPython's mbedTLS takes DER only);
    DER data as it is."""
    if not data.startswith(b"-----"):
        return [data]
    from binascii import a2b_base64

    out = []
    b64 = None
    for line in data.split(b"\n"):
        line = line.strip()
        if line.startswith(b"-----BEGIN CERTIFICATE"):
            b64 = []
        elif line.startswith(b"-----END CERTIFICATE") and b64 is not None:
            out.append(a2b_base64(b"".join(b64)))
            b64 = None
        elif b64 is not None:
            b64.append(line)
    if not out:
        raise OSError("no certificate in the CA file")
    return out


async def connect(svc):
    """Open the link to the broker of `svc` and log in: CONNECT with a retained
    "offline" Last Will, CONNACK, SUBSCRIBE to the command topics (and Home
    Assistant's status), then the retained "online"; then the new session's state
    and its reader task (`svc._rx`). Returns (writer, reader task,
    ms after which a silent broker is dead, ms between two rounds of the session
    loop); raises OSError (also when the broker refuses)."""
    svc._to("connecting")
    c = svc.cfg
    ms = svc.connect_timeout_ms
    ctx = svc._ctx
    if ctx is None and c["tls"]:
        ctx = svc._ctx = tls_context(c["ca"], c["insecure"])
    reader, writer = await wait_ms(asyncio.open_connection(c["host"], c["port"], ssl=ctx), ms)
    try:
        try:  # no Nagle delay for our small packets (CPython; skipped where not offered)
            import socket

            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Exception:
            pass
        status = svc.base + "/status"
        user = c["user"] or None
        pkt = connect_packet(
            c["client_id"] or "p1-" + svc.device_id,
            int(c["keepalive_s"]),
            user,
            c["password"] if user else None,
            (status, "offline", 1, True),
        )
        await write(writer, pkt, svc.write_timeout_ms)
        first, body = await wait_ms(read_packet(reader), ms)
        if first != 0x20 or len(body) != 2:
            raise OSError("expected CONNACK")
        if body[1]:  # the return code: refused (end() tells a bad login by it)
            svc._n[_REFUSED] = body[1]
            raise OSError(refused(body[1]))
        topics = [(svc.base + "/set/#", 0)]
        if getattr(svc.hub, "loads", None) is not None:  # the relays' overrides (docs/LOADCONTROL.md)
            topics.append((svc.base + "/relay/+/set", 0))
        if c["discovery"]:
            topics.append((c["discovery_prefix"] + "/status", 0))
        ob = svc.outbox  # SUBSCRIBE's packet id: the next one (those in flight are older)
        ob._pid = ob._pid % 65535 + 1
        await write(writer, subscribe_packet(ob._pid, topics), svc.write_timeout_ms)
        # "online" after SUBSCRIBE: whoever reacts to it finds the commands subscribed
        await write(writer, publish_head(status, 6, 0, True), svc.write_timeout_ms, b"online")
        # A new session: what was in flight goes again first (DUP, in order), discovery is due.
        for e in ob.inflight:
            e[3] = 0
        svc._discover = c["discovery"]
        svc._announced = b""
    except BaseException:
        try:
            writer.close()
            await wait_ms(writer.wait_closed(), 1000)  # (on MicroPython this closes the socket)
        except Exception:
            pass
        raise
    n = svc._n
    n[_CONN] += 1
    svc._err = None
    n[_RX] = n[_TX] = ticks_ms()
    rx = asyncio.create_task(svc._rx(reader, writer))
    svc._to("connected")  # last_error stays: the most recent failure
    svc._w = writer
    # Our own ping / dead-link timing; with keepalive_s 0 (sent as 0: the broker
    # never drops us) we still check every 60 s. A round: how late a ping or a resend may be.
    alive = max(c["keepalive_s"] or 60, 2) * 1000
    return writer, rx, alive, min(alive // 2, svc.ack_timeout_ms, 1000)


async def end(svc, w, rx, backoff):
    """The end of an attempt (`w` None: no connection) or a session (its writer `w`,
    its reader task `rx`): what ended it (`svc._err`) shown as the last error and the
    state, the link closed; returns the wait before the next attempt (ms, before
    jitter): doubled after each failed attempt, longer after a refused login."""
    e = svc._err
    n = svc._n
    code = n[_REFUSED]  # CONNACK's return code when the broker refused the login
    n[_REFUSED] = 0
    if e is not None and not svc._stopping:
        svc._last_error = str(e) or type(e).__name__
        svc._to("auth_failed" if 3 < code < 6 else "disconnected")  # bad login, not authorized
        if w is None:  # no connection: wait longer each time
            backoff = min(
                max(backoff * 2, svc.auth_backoff_ms if code else 0, svc.backoff_min_ms),
                max(svc.backoff_max_ms, svc.backoff_min_ms),
            )
    if rx is not None:
        rx.cancel()
    if w is not None:
        try:
            w.close()
            await wait_ms(w.wait_closed(), 1000)
        except Exception:  # noqa: BLE001
            pass
    return backoff


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
