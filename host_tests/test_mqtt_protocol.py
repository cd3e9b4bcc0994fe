"""net.mqtt: packets byte for byte, decoding, limits and deadlines; the Outbox ring.

Encoders are checked against hand-written bytes from the MQTT 3.1.1 spec and
against paho-mqtt's own packets; read_packet runs over real asyncio streams
(a loopback socket pair), fed whole and one byte at a time.
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

from net import mqtt  # noqa: E402
from net.mqtt_client import Outbox  # noqa: E402


def test_varlen_examples_from_the_spec():
    assert mqtt.varlen(0) == b"\x00"
    assert mqtt.varlen(127) == b"\x7f"
    assert mqtt.varlen(128) == b"\x80\x01"
    assert mqtt.varlen(16383) == b"\xff\x7f"
    assert mqtt.varlen(16384) == b"\x80\x80\x01"
    assert mqtt.varlen(268435455) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError):
        mqtt.varlen(268435456)


@given(st.integers(0, 268435455))
def test_varlen_round_trip(n):
    enc = mqtt.varlen(n)
    assert mqtt.decode_varlen(enc) == (n, len(enc))
    assert mqtt.decode_varlen(enc[:-1]) is None  # needs more


def test_decode_varlen_rejects_five_bytes():
    with pytest.raises(OSError):
        mqtt.decode_varlen(b"\xff\xff\xff\xff\x01")


def test_connect_bytes():
    pkt = mqtt.connect("p1", 30)
    assert pkt == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02p1"
    pkt = mqtt.connect("c", 60, "u", "pw", ("s", "offline", 1, True))
    # flags: user 0x80, password 0x40, will retain 0x20, will qos 1 0x08, will 0x04, clean 0x02
    assert pkt[9] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert pkt.endswith(b"\x00\x01c\x00\x01s\x00\x07offline\x00\x01u\x00\x02pw")


def test_encoders_match_paho():
    from paho.mqtt.client import MQTTMessageInfo  # noqa: F401 - paho present
    from paho.mqtt.packettypes import PacketTypes

    assert PacketTypes.PUBLISH == mqtt.PUBLISH
    # PUBLISH QoS 1 retained DUP, pid 10
    p = mqtt.publish("a/b", b"xyz", 1, True, True, 10)
    assert p == bytes([0x3B, 10]) + b"\x00\x03a/b\x00\x0axyz"
    assert mqtt.publish("t", "é", 0) == b"\x30\x05\x00\x01t\xc3\xa9"
    assert mqtt.puback(0x1234) == b"\x40\x02\x12\x34"
    assert mqtt.subscribe(1, [("x/#", 0)]) == b"\x82\x08\x00\x01\x00\x03x/#\x00"
    assert mqtt.PINGREQ_PACKET == b"\xc0\x00" and mqtt.DISCONNECT_PACKET == b"\xe0\x00"
    with pytest.raises(ValueError):
        mqtt.publish("t", b"", 1, pid=0)
    with pytest.raises(ValueError):
        mqtt.publish("t", b"", 2, pid=1)


def test_decode_each_packet_type():
    p = mqtt.decode(0x20, b"\x01\x00")
    assert (p.type, p.session_present, p.rc) == (mqtt.CONNACK, True, 0)
    assert mqtt.decode(0x20, b"\x00\x05").rc == 5
    p = mqtt.decode(0x40, b"\x00\x07")
    assert (p.type, p.pid) == (mqtt.PUBACK, 7)
    p = mqtt.decode(0x90, b"\x00\x01\x00\x80")
    assert (p.type, p.pid, list(p.codes)) == (mqtt.SUBACK, 1, [0, 0x80])
    assert mqtt.decode(0xD0, b"").type == mqtt.PINGRESP
    raw = mqtt.publish("p1/x/set/status", b"hi", 1, True, True, 513)
    p = mqtt.decode(raw[0], raw[2:])
    assert (p.topic, p.payload, p.qos, p.retain, p.dup, p.pid) == (
        "p1/x/set/status",
        b"hi",
        1,
        True,
        True,
        513,
    )


@pytest.mark.parametrize(
    "first, body",
    [
        (0x30, b"\x00"),  # topic length cut
        (0x30, b"\x00\x09ab"),  # topic longer than the packet
        (0x32, b"\x00\x01t\x00"),  # QoS 1 without a full pid
        (0x36, b"\x00\x01t"),  # QoS 3
        (0x20, b"\x00"),  # short CONNACK
        (0x40, b"\x00"),  # short PUBACK
        (0x30, b"\x00\x02\xff\xfe"),  # topic not UTF-8
    ],
)
def test_decode_rejects_malformed_packets_with_oserror(first, body):
    with pytest.raises(OSError):
        mqtt.decode(first, body)


def test_connack_refusals_have_readable_reasons():
    e = mqtt.MQTTError(5)
    assert isinstance(e, OSError)
    assert str(e) == "not authorized" and e.code == 5
    assert str(mqtt.MQTTError(4)) == "bad user name or password"
    assert "99" in str(mqtt.MQTTError(99))


KEEP = []  # the unused halves: closed when collected


async def _streams():
    """(reader of one end, writer of the other) of a socket pair."""
    a, b = socket.socketpair()
    reader, w = await asyncio.open_connection(sock=a)
    r, writer = await asyncio.open_connection(sock=b)
    KEEP.append((w, r))
    return reader, writer


PACKETS = [
    mqtt.publish("p1/dev/state", b"{}" * 300, 1, False, False, 42),
    b"\x40\x02\x00\x2a",
    b"\xd0\x00",
    mqtt.publish("t", b"x" * 200, 0),
]


@pytest.mark.parametrize("chunk", [0, 1])
def test_read_packet_over_a_stream_whole_and_byte_by_byte(chunk):
    async def main():
        reader, writer = await _streams()
        data = b"".join(PACKETS)

        async def feed():  # runs while the reader waits: it sees every partial state
            if chunk:
                for i in range(len(data)):
                    writer.write(data[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.0005)
            else:
                await mqtt.write(writer, data)

        t = asyncio.create_task(feed())
        got = [await mqtt.read_packet(reader, 1000, 1000) for _ in PACKETS]
        await t
        writer.close()
        return got

    got = asyncio.run(main())
    assert [bytes([f]) + mqtt.varlen(len(b)) + b for f, b in got] == PACKETS


def test_read_packet_deadlines_eof_and_size_limit():
    async def main():
        reader, writer = await _streams()
        with pytest.raises(OSError, match="timeout"):
            await mqtt.read_packet(reader, 50)
        writer.write(b"\x30")  # first byte, then silence
        await writer.drain()
        with pytest.raises(OSError, match="timeout"):
            await mqtt.read_packet(reader, 1000, 50)
        reader, writer = await _streams()
        writer.write(mqtt.publish("t", b"x" * 100))
        await writer.drain()
        with pytest.raises(OSError, match="too large"):
            await mqtt.read_packet(reader, 1000, 1000, max_size=50)
        reader, writer = await _streams()
        writer.write(b"\x30\x05\x00")
        writer.close()
        with pytest.raises(OSError, match="closed"):
            await mqtt.read_packet(reader, 1000, 1000)

    asyncio.run(main())


def test_outbox_ring_drops_the_oldest_and_counts_them():
    ob = Outbox(3, max_inflight=2)
    for i in range(5):
        ob.put(("t", str(i), False))
    assert len(ob) == 3 and ob.dropped == 2
    m1, p1 = ob.take(1, now=0)
    m2, p2 = ob.take(1, now=10)
    assert (m1[1], m2[1], p1, p2) == ("2", "3", 1, 2)
    assert ob.take(1, now=20) is None  # window full
    assert len(ob) == 3
    assert [e[0] for e in ob.overdue(now=5005, timeout_ms=5000)] == [1]
    assert ob.ack(1)[1] == "2"
    assert ob.ack(1) is None
    m3, p3 = ob.take(1, now=30)
    assert (m3[1], p3) == ("4", 3)
    assert ob.take(0, now=40) is None  # empty


def test_outbox_packet_ids_wrap_and_skip_those_in_flight():
    ob = Outbox(4, max_inflight=4)
    ob._pid = 65534
    for i in range(3):
        ob.put(("t", str(i), False))
    pids = [ob.take(1, 0)[1] for _ in range(3)]
    assert pids == [65535, 1, 2]
    ob._pid = 65534
    ob.put(("t", "x", False))
    assert ob.take(1, 0)[1] == 3  # 65535, 1, 2 are still in flight


def test_pem_ca_files_become_der_for_micropythons_mbedtls(tmp_path):
    """MicroPython's ssl takes DER only: a PEM CA file (one or more certificates) is converted."""
    import ssl as cssl

    from mosquitto import make_certs
    from net.mqtt_client import der_certs

    ca, cert, _ = make_certs(tmp_path)
    pem = ca.read_bytes() + cert.read_bytes()
    ders = der_certs(pem)
    assert [cssl.DER_cert_to_PEM_cert(d).encode() for d in ders] == [ca.read_bytes(), cert.read_bytes()]
    assert der_certs(ders[0]) == [ders[0]]
    with pytest.raises(OSError):
        der_certs(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
