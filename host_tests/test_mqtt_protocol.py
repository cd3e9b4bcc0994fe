"""net.mqtt and net.mqtt_rare: packets byte for byte, decoding, limits and deadlines;
the Outbox ring.

Encoders are checked against hand-written bytes from the MQTT 3.1.1 spec and
against paho-mqtt's own packets; read_packet runs over a loopback socket pair
(whole) and over asyncio's StreamReader fed one byte at a time in lock step.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))

from net import mqtt, mqtt_rare, mqtt_setup  # noqa: E402
from net.mqtt_setup import outbox  # noqa: E402


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0) -> bytes:
    """A whole PUBLISH packet: the firmware writes the head and the payload apart."""
    if isinstance(payload, str):
        payload = payload.encode()
    return bytes(mqtt.publish_head(topic, len(payload), qos, retain, dup, pid)) + payload


def varlen(n: int) -> bytes:
    return bytes(mqtt.packet(0, b"", n)[1:])


def decode_varlen(buf: bytes, pos: int = 0):
    """(length, next position) of a remaining-length field, None when it needs more bytes."""
    n = shift = 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        b = buf[pos + i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos + i + 1
        shift += 7
    raise ValueError("bad remaining length")


def test_varlen_examples_from_the_spec():
    assert varlen(0) == b"\x00"
    assert varlen(127) == b"\x7f"
    assert varlen(128) == b"\x80\x01"
    assert varlen(16383) == b"\xff\x7f"
    assert varlen(16384) == b"\x80\x80\x01"
    assert varlen(268435455) == b"\xff\xff\xff\x7f"
    assert mqtt.packet(0x82, b"abc") == b"\x82\x03abc"
    assert mqtt.packet(0x30, b"ab", 200) == b"\x30\xca\x01ab"  # the 200-byte payload follows


@given(st.integers(0, 268435455))
def test_varlen_round_trip(n):
    enc = varlen(n)
    assert decode_varlen(enc) == (n, len(enc))
    assert decode_varlen(enc[:-1]) is None  # needs more


def test_connect_bytes():
    pkt = mqtt_rare.connect_packet("p1", 30)
    assert pkt == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02p1"
    pkt = mqtt_rare.connect_packet("c", 60, "u", "pw", ("s", "offline", 1, True))
    # flags: user 0x80, password 0x40, will retain 0x20, will qos 1 0x08, will 0x04, clean 0x02
    assert pkt[9] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert pkt.endswith(b"\x00\x01c\x00\x01s\x00\x07offline\x00\x01u\x00\x02pw")


def test_encoders_match_paho():
    from paho.mqtt.client import MQTTMessageInfo  # noqa: F401 - paho present
    from paho.mqtt.packettypes import PacketTypes

    assert PacketTypes.PUBLISH == 3 and PacketTypes.PUBACK == 4 and PacketTypes.CONNACK == 2
    # PUBLISH QoS 1 retained DUP, pid 10
    p = publish("a/b", b"xyz", 1, True, True, 10)
    assert p == bytes([0x3B, 10]) + b"\x00\x03a/b\x00\x0axyz"
    assert publish("t", "é", 0) == b"\x30\x05\x00\x01t\xc3\xa9"
    assert mqtt_rare.subscribe_packet(1, [("x/#", 0)]) == b"\x82\x08\x00\x01\x00\x03x/#\x00"
    b = bytearray(b"x")
    mqtt_rare.field(b, "é" * 200)
    assert b[:3] == b"x\x01\x90" and len(b) == 403  # the UTF-8 length, big-endian


def test_decode_each_packet_type():
    assert mqtt.decode(0x40, b"\x00\x07") == (4, 7, None, None)  # PUBACK 7
    assert mqtt.decode(0xD0, b"") == (13, 0, None, None)  # PINGRESP
    assert mqtt.decode(0x90, b"\x00\x01\x00\x80") == (9, 0, None, None)  # SUBACK: nothing we use
    raw = publish("p1/x/set/status", b"hi", 1, True, True, 513)
    assert mqtt.decode(raw[0], raw[2:]) == (3, 513, "p1/x/set/status", b"hi")
    raw = publish("t", b"", 0)
    assert mqtt.decode(raw[0], raw[2:]) == (3, 0, "t", b"")  # QoS 0: no packet id


@pytest.mark.parametrize(
    "first, body",
    [
        (0x30, b"\x00"),  # topic length cut
        (0x30, b"\x00\x09ab"),  # topic longer than the packet
        (0x32, b"\x00\x01t\x00"),  # QoS 1 without a full pid
        (0x36, b"\x00\x01t"),  # QoS 3
        (0x40, b"\x00"),  # short PUBACK
        (0x30, b"\x00\x02\xff\xfe"),  # topic not UTF-8
    ],
)
def test_decode_rejects_malformed_packets_with_oserror(first, body):
    with pytest.raises(OSError):
        mqtt.decode(first, body)


def test_connack_refusals_have_readable_reasons():
    assert mqtt_rare.refused(5) == "not authorized"
    assert mqtt_rare.refused(4) == "bad user name or password"
    assert mqtt_rare.refused(3) == "server unavailable"
    assert mqtt_rare.refused(2) == "client identifier rejected"
    assert mqtt_rare.refused(1) == "unacceptable protocol version"
    assert "99" in mqtt_rare.refused(99) and "0" in mqtt_rare.refused(0)


KEEP = []  # the unused halves: closed when collected


async def _streams():
    """(reader of one end, writer of the other) of a socket pair."""
    a, b = socket.socketpair()
    reader, w = await asyncio.open_connection(sock=a)
    r, writer = await asyncio.open_connection(sock=b)
    KEEP.append((w, r))
    return reader, writer


PACKETS = [
    publish("p1/dev/state", b"{}" * 300, 1, False, False, 42),  # a 2-byte remaining length
    b"\x40\x02\x00\x2a",
    b"\xd0\x00",
    publish("t", b"x" * 200, 0),
    b"\x30" + varlen(20000) + b"\x00\x01t" + b"y" * 19997,  # a 3-byte remaining length
]
MINUTE = 60000  # deadlines that are never reached: these tests do not depend on speed


def rebuild(got) -> list[bytes]:
    return [bytes([f]) + varlen(len(b)) + b for f, b in got]


def test_read_packet_over_a_socket_whole():
    async def main():
        reader, writer = await _streams()
        await mqtt.write(writer, b"".join(PACKETS))
        got = [await mqtt.read_packet(reader, max_size=32768) for _ in PACKETS]
        writer.close()
        return got

    assert rebuild(asyncio.run(main())) == PACKETS


def test_read_packet_one_byte_at_a_time():
    """The stream gets each byte only once the reader waits for more, so the reader
    meets every partial packet and must return each packet exactly at its last byte.
    Lock-step on asyncio's own StreamReader (what a socket feeds; the whole case above
    runs over a socket): no sleeps, no clock, the same steps on a busy machine."""

    async def main():
        reader = asyncio.StreamReader()
        got: list = []

        async def read_all():
            for _ in PACKETS:
                got.append(await mqtt.read_packet(reader, max_size=32768))

        task = asyncio.create_task(read_all())

        async def until_waiting():
            for _ in range(1000):  # a few loop turns: readexactly
                if reader._waiter is not None or task.done():
                    return
                await asyncio.sleep(0)
            raise AssertionError("the reader neither waits nor ends")

        data = b"".join(PACKETS)
        ends = []
        for p in PACKETS:
            ends.append((ends[-1] if ends else 0) + len(p))
        for i in range(len(data)):
            await until_waiting()
            assert len(got) == sum(1 for e in ends if e <= i), i  # no packet before its last byte
            reader.feed_data(data[i : i + 1])
        await until_waiting()
        await task
        return got

    assert rebuild(asyncio.run(main())) == PACKETS


def test_read_packet_eof_size_limit_and_deadlines_from_wait_ms():
    """read_packet has no deadline of its own (the session loop declares a silent broker
    dead); a reply that must come in time is read under wait_ms()."""

    async def main():
        reader, writer = await _streams()
        with pytest.raises(OSError, match="timeout"):
            await mqtt.wait_ms(mqtt.read_packet(reader), 50)  # nothing at all
        writer.write(b"\x30\x05\x00")  # a PUBLISH's type, length and one byte, then silence
        await writer.drain()
        with pytest.raises(OSError, match="timeout"):
            await mqtt.wait_ms(mqtt.read_packet(reader), 50)
        reader, writer = await _streams()
        writer.write(b"\x30\x85")  # a length byte saying "more", then silence
        await writer.drain()
        with pytest.raises(OSError, match="timeout"):
            await mqtt.wait_ms(mqtt.read_packet(reader), 50)
        reader, writer = await _streams()
        writer.write(publish("t", b"x" * 100))
        await writer.drain()
        with pytest.raises(OSError, match="too large"):
            await mqtt.read_packet(reader, max_size=50)
        reader, writer = await _streams()
        writer.write(b"\x30\xff\xff\xff\xff\x01")  # a remaining length of 5 bytes
        await writer.drain()
        with pytest.raises(OSError, match="remaining length"):
            await mqtt.read_packet(reader)
        reader, writer = await _streams()
        writer.write(b"\x30\x05\x00")
        writer.close()
        with pytest.raises(OSError, match="closed"):
            await mqtt.read_packet(reader)
        # wait_ms hands over the result or the error, and cancels what ran out of time
        assert await mqtt.wait_ms(asyncio.sleep(0, "done"), MINUTE) == "done"
        reader, writer = await _streams()
        writer.write(b"\xd0\x00\x40\x02\x00\x07")  # PINGRESP, PUBACK 7
        await writer.drain()
        assert await mqtt.wait_ms(mqtt.read_packet(reader), MINUTE) == (0xD0, b"")
        with pytest.raises(OSError, match="too large"):
            await mqtt.wait_ms(mqtt.read_packet(reader, max_size=1), MINUTE)
        ended = []

        async def slow():
            try:
                await asyncio.sleep(60)
            finally:
                ended.append(True)

        with pytest.raises(OSError, match="timeout"):
            await mqtt.wait_ms(slow(), 20)
        await asyncio.sleep(0)
        assert ended == [True]  # cancelled, not left running
        waiting = asyncio.ensure_future(mqtt.wait_ms(slow(), MINUTE))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the waiter cancelled: so is what it waits for
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0)
        assert ended == [True, True]

    asyncio.run(main())


def test_outbox_ring_drops_the_oldest_and_counts_them():
    ob = outbox(3, max_inflight=2)
    for i in range(5):
        ob.put(("t", str(i), False))
    assert len(ob.ring) == 3 and ob.dropped == 2
    m1, p1 = ob.take(now=0)
    m2, p2 = ob.take(now=10)
    assert (m1[1], m2[1], p1, p2) == ("2", "3", 1, 2)
    assert ob.take(now=20) is None  # window full
    assert len(ob.ring) + len(ob.inflight) == 3
    assert [e[0] for e in ob.inflight] == [1, 2] and ob.inflight[0][2:] == [0, 1, None]  # sent at 0, once
    assert ob.ack(1) == "t"  # its topic
    assert ob.ack(1) is None
    m3, p3 = ob.take(now=30)
    assert (m3[1], p3) == ("4", 3)
    ob.qos = 0
    assert ob.take(now=40) is None  # empty
    ob.put(("t", "5", False))
    assert ob.take(now=50) == (("t", "5", False), 0) and len(ob.inflight) == 2  # QoS 0: not kept


def test_outbox_packet_ids_wrap_and_skip_those_in_flight():
    ob = outbox(4, max_inflight=4)
    ob._pid = 65534
    for i in range(3):
        ob.put(("t", str(i), False))
    pids = [ob.take(0)[1] for _ in range(3)]
    assert pids == [65535, 1, 2]
    ob._pid = 65534
    ob.put(("t", "x", False))
    assert ob.take(0)[1] == 3  # 65535, 1, 2 are still in flight


def test_pem_ca_files_become_der_for_micropythons_mbedtls(tmp_path):
    """MicroPython's ssl takes DER only: a PEM CA file (one or more certificates) is converted."""
    import ssl as cssl

    from mosquitto import make_certs
    from net.mqtt_rare import der_certs

    ca, cert, _ = make_certs(tmp_path)
    pem = ca.read_bytes() + cert.read_bytes()
    ders = der_certs(pem)
    assert [cssl.DER_cert_to_PEM_cert(d).encode() for d in ders] == [ca.read_bytes(), cert.read_bytes()]
    assert der_certs(ders[0]) == [ders[0]]
    with pytest.raises(OSError):
        der_certs(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_the_service_knows_how_many_keys_a_full_mqtt_section_has():
    """MqttService fills a section with fewer keys (tests, tools) from config.DEFAULTS;
    a full one (what config.validate gives) is used as it is."""
    from config import DEFAULTS
    from hub import Hub
    from net import mqtt_client

    assert mqtt_setup._NKEYS == len(DEFAULTS["mqtt"])
    full = dict(DEFAULTS["mqtt"], host="h")
    assert mqtt_client.MqttService(Hub(), full, "dev").cfg is full
    part = {"enabled": True, "host": "h"}
    got = mqtt_client.MqttService(Hub(), part, "dev").cfg
    assert got is not part and got == dict(DEFAULTS["mqtt"], enabled=True, host="h")
