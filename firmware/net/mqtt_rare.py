"""What the MQTT client does at each connection attempt: log in, end a session.

`MqttService._slow()` imports this module for one such job and drops it after
(`mem.unload`): the TLS context, PEM -> DER, the CONNECT and SUBSCRIBE
encoders, the CONNACK reasons and the end of a session or attempt cost RAM
only while they run. The login comes again after every outage, when the
heap is fullest (the flash spool open, a backlog to drain): what runs once or
on demand -- the constructor, the outbox, commands, stop -- is in
`net.mqtt_setup`, so that it is not in RAM then too (~1.6 KB, 32-bit). The
status section is `net.mqtt_status`, the discovery round `net.ha.announce`.
Each job is a function `job(svc, ...)` of the service `svc` (an MqttService);
`connect` and `end` are coroutines.
"""

import asyncio

import log
from clock import ticks_ms
from net.mqtt import packet, publish_head, read_packet, wait_ms, write

try:
    from micropython import const
except ImportError:  # CPython
    const = int

# indexes of MqttService._n (see net.mqtt_client)
_CONN = const(1)
_RX = const(6)
_TX = const(7)
_REFUSED = const(11)


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
        # A new session: what was in flight goes again first (DUP, in order), discovery is
        # due: every config again (the broker may have lost them), but the emptied ones of
        # names this meter does not send only in the boot's first round (`_announced` is
        # b"" then, net.ha.announce): done once, they stay done; a round after an outage is
        # shorter, and with it the time its code is in RAM beside the readings.
        for e in ob.inflight:
            e[3] = 0
        svc._discover = c["discovery"]
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
        if isinstance(e, MemoryError):  # (a write, the reader): counted, and a pause before the
            log.oom("mqtt")  # next login, itself a large job, so the heap has a moment to clear
            backoff = max(backoff, svc.oom_wait_ms)
        svc._last_error = str(e) or type(e).__name__
        svc._to("auth_failed" if 3 < code < 6 else "disconnected")  # bad login, not authorized
        if w is not None:  # a session ended (not each failed attempt: one line an outage)
            log.warn("mqtt: disconnected: " + svc._last_error)
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
