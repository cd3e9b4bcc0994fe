"""MQTT 3.1.1 protocol layer: packets to bytes and back, over asyncio streams.

Strategy: the encoders and `decode()` are pure functions (tested under
MicroPython without sockets); `read_packet()` and `write()` are the only
functions that touch a stream and both run under a deadline. Trouble is
raised, never handled here: `OSError` for the link (timeouts, EOF, garbage),
`MQTTError` (an `OSError`) for a refused CONNECT with a readable reason.
What to do about it is the policy layer's job (`net.mqtt_client`).
"""

import asyncio

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBSCRIBE = const(8)
SUBACK = const(9)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

# Largest packet we accept from the broker (commands, SUBACK, PUBACK...).
MAX_PACKET = 8192

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class MQTTError(OSError):
    """The broker refused the connection; `.code` is the CONNACK return code."""

    def __init__(self, code):
        self.code = code
        super().__init__(CONNACK_REASONS.get(code, "refused (code %d)" % code))

    def __str__(self):
        return CONNACK_REASONS.get(self.code, "refused (code %d)" % self.code)


# ---- encoding ---------------------------------------------------------------------


def varlen(n):
    """The remaining-length field: 1-4 bytes, 7 bits each, high bit = more."""
    if n < 0 or n > 268435455:
        raise ValueError("packet too large")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _field(buf, s):
    s = _b(s)
    if len(s) > 65535:
        raise ValueError("field too long")
    buf.append(len(s) >> 8)
    buf.append(len(s) & 0xFF)
    buf.extend(s)


def _packet(first, body):
    return bytes([first]) + varlen(len(body)) + body


def connect(client_id, keepalive_s=30, user=None, password=None, will=None, clean=True):
    """CONNECT. `will` is None or (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
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
    _field(body, client_id)
    if will:
        _field(body, will[0])
        _field(body, will[1])
    if user:
        _field(body, user)
        if password is not None:
            _field(body, password)
    return _packet(CONNECT << 4, body)


def publish_head(topic, n, qos=0, retain=False, dup=False, pid=0):
    """A PUBLISH packet up to its payload of `n` bytes; the payload follows it on
    the wire as it is (a reading's JSON body is never copied into a packet)."""
    if qos not in (0, 1):
        raise ValueError("qos 0 or 1")
    first = PUBLISH << 4 | qos << 1 | (1 if retain else 0) | (8 if dup else 0)
    var = bytearray()
    _field(var, topic)
    if qos:
        if not 0 < pid < 65536:
            raise ValueError("packet id 1..65535")
        var.append(pid >> 8)
        var.append(pid & 0xFF)
    return bytes([first]) + varlen(len(var) + n) + var


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """PUBLISH as one bytes object. `payload` is str or bytes-like; `pid` is required for QoS 1."""
    payload = _b(payload)
    return publish_head(topic, len(payload), qos, retain, dup, pid) + payload


def puback(pid):
    return bytes((PUBACK << 4, 2, pid >> 8, pid & 0xFF))


def subscribe(pid, topics):
    """SUBSCRIBE to a list of (topic filter, qos)."""
    body = bytearray((pid >> 8, pid & 0xFF))
    for topic, qos in topics:
        _field(body, topic)
        body.append(qos)
    return _packet(SUBSCRIBE << 4 | 2, body)


# ---- decoding ---------------------------------------------------------------------


def decode_varlen(buf, pos=0):
    """(length, next position) from `buf[pos:]`, or None when more bytes are needed.

    Raises OSError on a field longer than 4 bytes.
    """
    n = 0
    shift = 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        b = buf[pos + i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos + i + 1
        shift += 7
    raise OSError("bad remaining length")


def _u16(body, pos):
    if pos + 2 > len(body):
        raise OSError("short packet")
    return body[pos] << 8 | body[pos + 1]


class Packet:
    """A decoded packet: `type` plus the fields that type has (others stay 0/None)."""

    def __init__(self, type, pid=0):
        self.type = type
        self.pid = pid
        self.rc = 0  # CONNACK return code
        self.session_present = False
        self.topic = ""  # PUBLISH
        self.payload = b""
        self.qos = 0
        self.retain = False
        self.dup = False
        self.codes = b""  # SUBACK: granted QoS per filter


def decode(first, body):
    """One packet from its first byte and body -> Packet. OSError if malformed."""
    t = first >> 4
    if t == PUBLISH:
        p = Packet(t)
        p.qos = first >> 1 & 3
        if p.qos > 2:
            raise OSError("bad qos")
        n = _u16(body, 0)
        pos = 2 + n
        if pos > len(body):
            raise OSError("short packet")
        try:
            p.topic = bytes(body[2:pos]).decode()
        except UnicodeError:
            raise OSError("bad topic")
        if p.qos:
            p.pid = _u16(body, pos)
            pos += 2
        p.payload = bytes(body[pos:])
        p.retain = bool(first & 1)
        p.dup = bool(first & 8)
        return p
    if t == CONNACK:
        if len(body) != 2:
            raise OSError("bad CONNACK")
        p = Packet(t)
        p.session_present = bool(body[0] & 1)
        p.rc = body[1]
        return p
    if t == PUBACK:
        return Packet(t, _u16(body, 0))
    if t == SUBACK:
        p = Packet(t, _u16(body, 0))
        p.codes = bytes(body[2:])
        return p
    return Packet(t)


# ---- streams ----------------------------------------------------------------------

try:
    wait_ms = asyncio.wait_for_ms  # MicroPython
except AttributeError:  # CPython

    def wait_ms(aw, ms):
        return asyncio.wait_for(aw, ms / 1000)


async def _read(reader, n, ms):
    try:
        data = await wait_ms(reader.readexactly(n), ms)
    except asyncio.TimeoutError:
        raise OSError("read timeout")
    except EOFError:  # CPython's IncompleteReadError is one too
        raise OSError("connection closed by broker")
    if len(data) != n:  # some MicroPython versions return short at EOF
        raise OSError("connection closed by broker")
    return data


async def read_packet(reader, first_ms, rest_ms=5000, max_size=MAX_PACKET):
    """Read one packet -> (first byte, body bytes).

    Waits up to `first_ms` for its first byte (an idle link is normal), then
    up to `rest_ms` for each further read. Raises OSError on a timeout, EOF or
    a packet larger than `max_size`.
    """
    first = (await _read(reader, 1, first_ms))[0]
    n = 0
    shift = 0
    while True:
        b = (await _read(reader, 1, rest_ms))[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 21:
            raise OSError("bad remaining length")
    if n > max_size:
        raise OSError("packet too large (%d bytes)" % n)
    body = await _read(reader, n, rest_ms) if n else b""
    return first, body


async def write(writer, data, ms=10000, more=None):
    """Write bytes (then `more`, if given) and wait until the stream took them, at most `ms`."""
    writer.write(data)
    if more:
        writer.write(more)
    try:
        await wait_ms(writer.drain(), ms)
    except asyncio.TimeoutError:
        raise OSError("write timeout")
