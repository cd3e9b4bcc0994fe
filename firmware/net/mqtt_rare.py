"""What the MQTT client does rarely: log in, handle a command.

`MqttService._rare()` imports this module for one such job and drops it after
(`mem.unload`), with the JSON writer it may have loaded: the TLS context,
PEM -> DER, the CONNECT and SUBSCRIBE encoders, the CONNACK reasons and the
status answer cost RAM only while they run. Each job is a coroutine
`job(svc, ...)` of the service `svc` (an MqttService). (The discovery round,
the other rare job, is `net.ha.announce`.)
"""

import asyncio

from net.mqtt import packet, publish_head, read_packet, wait_ms, write

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_CMD = const(3)  # indexes of MqttService._n: commands, bad commands
_BAD = const(4)

# CONNACK return codes 1..5.
REASONS = (
    "unacceptable protocol version",
    "client identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


class MQTTError(OSError):
    """The broker refused the connection; `.code` is the CONNACK return code, the text its reason."""

    def __init__(self, code):
        super().__init__(REASONS[code - 1] if 0 < code <= len(REASONS) else "refused (code %d)" % code)
        self.code = code


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
    Assistant's status), then the retained "online"; the new session's state.
    Returns (reader, writer); raises OSError, MQTTError when the broker refuses."""
    c = svc.cfg
    ms = svc.connect_timeout_ms
    ctx = tls_context(c["ca"], c["insecure"]) if c["tls"] else None
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
        if body[1]:  # the return code
            raise MQTTError(body[1])
        topics = [(svc.base + "/set/#", 0)]
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
    return reader, writer


async def command(svc, w, pid, topic, payload):
    """A PUBLISH from the broker on `w` (packet id `pid`, 0 for QoS 0): a command
    or Home Assistant's birth message. `<base>/set/status` is answered with the
    whole status JSON on `<base>/status/detail`; `<base>/set/discovery` and HA's
    "online" call for a discovery round; anything else is counted bad."""
    if pid:  # PUBACK
        w.write(bytes((0x40, 2, pid >> 8, pid & 0xFF)))
    base = svc.base
    if topic == svc.cfg["discovery_prefix"] + "/status":
        if payload == b"online":
            svc._discover = True
        return
    if len(payload) > 64 or topic not in (base + "/set/status", base + "/set/discovery"):
        svc._n[_BAD] += 1
        return
    svc._n[_CMD] += 1
    if topic.endswith("discovery"):
        svc._discover = True
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
    await write(w, publish_head(base + "/status/detail", len(payload)), svc.write_timeout_ms, payload)
