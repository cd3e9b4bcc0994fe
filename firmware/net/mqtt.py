"""MQTT 3.1.1 protocol layer: what a connected client uses on every message.

Strategy: `packet()`, `publish_head()` and `decode()` are pure functions
(tested under MicroPython without sockets); `read_packet()` and `write()` are
the only functions that touch a stream (`write()` under a deadline, see
`wait_ms()`). Trouble is raised, never handled here: `OSError` for the link
(timeouts, EOF, garbage). What is needed only to log in (CONNECT, CONNACK and its reasons,
SUBSCRIBE, TLS) is in `net.mqtt_rare`, imported for each connection attempt
and dropped after it. What to do about trouble is the policy layer's job
(`net.mqtt_client`).
"""

import asyncio

try:
    from asyncio import sleep_ms  # MicroPython: a sleep allocates nothing
except ImportError:  # CPython
    from aio import sleep_ms

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_PUBLISH = const(3)
_MAX_PACKET = const(8192)  # the largest packet we accept from the broker (commands, PUBACK...)


def packet(first, var, more=0):
    """The fixed header (`first` byte, remaining length: 1-4 bytes of 7 bits, high
    bit = more; up to 256 MB, far more than a device holds) and `var`: a whole
    packet, or one whose last `more` bytes follow it on the wire."""
    n = len(var) + more
    out = bytearray((first,))
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    out.extend(var)
    return out


def publish_head(topic, n, qos=0, retain=False, dup=False, pid=0):
    """A PUBLISH packet up to its payload of `n` bytes; the payload follows it on
    the wire as it is (a reading's JSON body is never copied into a packet).
    `qos` is 0 or 1; QoS 1 takes a `pid` 1..65535."""
    t = topic.encode()
    var = bytearray((len(t) >> 8, len(t) & 0xFF))
    var.extend(t)
    if qos:
        var.append(pid >> 8)
        var.append(pid & 0xFF)
    return packet(_PUBLISH << 4 | qos << 1 | (1 if retain else 0) | (8 if dup else 0), var, n)


def decode(first, body):
    """A packet from the broker, from its first byte and body -> `(type, pid, topic,
    payload)`: `pid` is a PUBACK's packet id or a PUBLISH's (0 for QoS 0), `topic`
    (str) and `payload` are a PUBLISH's; other types come as `(type, 0, None, None)`
    (CONNACK is read by `net.mqtt_rare`). Raises OSError if the packet is malformed.
    """
    t = first >> 4
    if t != 4 and t != _PUBLISH:
        return t, 0, None, None
    size = len(body)
    if size < 2:
        raise OSError("short packet")
    n = body[0] << 8 | body[1]
    if t == 4:  # PUBACK
        return t, n, None, None
    qos = first >> 1 & 3
    pos = 2 + n  # after the topic
    if qos > 2 or pos + (2 if qos else 0) > size:
        raise OSError("bad PUBLISH")
    try:
        topic = body[2:pos].decode()
    except UnicodeError:
        raise OSError("bad topic")
    n = 0
    if qos:
        n = body[pos] << 8 | body[pos + 1]
        pos += 2
    return t, n, topic, body[pos:]


# ---- streams ----------------------------------------------------------------------


async def _expire(task, ms):
    await sleep_ms(ms)
    task.cancel()


async def wait_ms(aw, ms):
    """Await coroutine `aw` for at most `ms` milliseconds; OSError("timeout") after.
    Like asyncio.wait_for, without loading asyncio.funcs (~0.9 KB): `aw` runs as a
    task and a second one cancels it when the time is up."""
    t = asyncio.create_task(aw)
    k = asyncio.create_task(_expire(t, ms))
    try:
        return await t
    except asyncio.CancelledError:
        if k.done():  # the time was up
            raise OSError("timeout")
        t.cancel()  # we were cancelled: so is `aw`
        raise
    finally:
        k.cancel()


async def read_packet(reader, max_size=_MAX_PACKET):
    """Read one packet -> (first byte, body bytes). Raises OSError on EOF or a packet
    larger than `max_size`. No deadline of its own: a connection's reader waits as
    long as the link lives (the session loop declares a silent broker dead); a reply
    that must come in time is awaited under `wait_ms()`."""
    try:
        h = await reader.readexactly(2)  # every packet has a type and a length byte
        b = h[1]
        n = b & 0x7F
        shift = 0
        while b & 0x80:
            shift += 7
            if shift > 21:
                raise OSError("bad remaining length")
            b = (await reader.readexactly(1))[0]
            n |= (b & 0x7F) << shift
        if n > max_size:
            raise OSError("packet too large (%d bytes)" % n)
        return h[0], await reader.readexactly(n)
    except EOFError:  # CPython's IncompleteReadError is one too
        raise OSError("connection closed by broker")


async def write(writer, data, ms=10000, more=None):
    """Write bytes (then `more`, if given) and wait until the stream took them, at most `ms`.
    `more` is bytes, or a tuple of ASCII str (a discovery config's pieces, net.ha): each
    written as it is on MicroPython, whose streams take a str's bytes (no copy made),
    encoded on CPython."""
    writer.write(data)
    if type(more) is tuple:
        for p in more:
            writer.write(p if hasattr(writer, "out_buf") else p.encode())
    elif more:
        writer.write(more)
    if getattr(writer, "out_buf", 1):  # (CPython's writer has none: always drained)
        await wait_ms(writer.drain(), ms)
    else:  # MicroPython's socket took it all: no deadline's two tasks to make, only a yield
        await sleep_ms(0)
