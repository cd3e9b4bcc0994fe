"""Fuzzing (Hypothesis, bounded by max_examples, no deadline): the meter path on
random bytes and on mutated recorded telegrams, and HTTP request heads over a
real socket against the host-board firmware.

- Framer: any bytes, cut anywhere, never raise (the only documented error is
  ValueError for feeding before draining); every frame starts with "/", holds
  its "!", and is "ok" exactly when its CRC-16 is right (checked here with our
  own CRC, not the firmware's); the same frames however the bytes are cut.
- The meter pipeline (framer -> p1.body, or the general decoder): recorded
  telegrams with bytes changed, inserted or deleted and the CRC written anew
  never raise, and whatever it publishes equals, byte for byte, what the
  general decoder makes of the same frame; with one byte changed and the CRC
  left as recorded nothing is ever published (CRC-16 catches every 8-bit burst).
- HTTP: random request lines, headers and bodies get a 4xx or an answer,
  never a 500, the connection always ends (no hang), and the server goes on
  serving, under CPython and under MicroPython's Unix port.
"""

from __future__ import annotations

import json
import re
import socket

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from p1util import BAD_CRC, frames, recorded
from p1.body import Encoder
from p1.jsonout import dumps
from p1.parse import parse
from p1.readings import readings
from runtime_harness import Firmware, MeterServer

GOOD = [p.read_bytes() for p in recorded() if p.name not in BAD_CRC]


def crc16(data: bytes) -> int:
    """CRC-16/ARC (poly 0xA001 reflected, init 0), as DSMR 5 specifies: written here
    independently of p1.crc."""
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return c


def with_crc(body: bytes) -> bytes:
    """`body` ("/" .. "!") with a right CRC and CRLF."""
    return body + b"%04X\r\n" % crc16(body)


def general(raw: bytes, std_offset: int = 120) -> bytes:
    return dumps(readings(parse(raw, "ok", std_offset))).encode()


# ------------------------------------------------------------------ framer

CHUNKS = st.lists(st.integers(1, 400), min_size=1, max_size=20)
NOISE = st.one_of(
    st.binary(max_size=600),
    st.lists(st.sampled_from([b"/", b"!", b"\r\n", b"\n", b"0", b"FFFF", b"/X5", b"!ZZ"]), max_size=60).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.one_of(NOISE, st.sampled_from(GOOD)), max_size=6).map(b"".join), chunks=CHUNKS)
def test_framer_on_any_bytes(data, chunks):
    got, crcs, counters = frames(data, chunks, size=1024)
    assert (got, crcs, counters) == frames(data, size=1024)  # however the bytes are cut
    assert counters["telegrams"] == len(got)
    for f, crc in zip(got, crcs):
        assert f[:1] == b"/" and b"!" in f and len(f) <= 1024
        t = f.index(b"!") + 1
        trailer = f[t:].rstrip(b"\r\n")
        if crc == "ok":
            assert re.fullmatch(rb"[0-9A-Fa-f]{1,4}", trailer) and int(trailer, 16) == crc16(f[:t])
        elif crc == "none":
            assert trailer == b""
        else:
            assert crc == "bad" and (
                not re.fullmatch(rb"[0-9A-Fa-f]{1,4}", trailer) or int(trailer, 16) != crc16(f[:t])
            )


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_framer_buffer_never_grows_and_counts_every_byte_it_skips(data):
    from p1.framer import Framer

    fr = Framer(256)
    fr.feed(data)
    with pytest.raises(ValueError):  # the documented misuse: feeding before draining
        if data.count(b"/"):
            fr.feed(b"x")
        else:
            raise ValueError
    while fr.next_frame() is not None:
        assert len(fr._buf) == 256
    fr.end()
    assert len(fr._buf) == 256
    if b"/" not in data:
        assert fr.counters["skipped_bytes"] == len(data)


# ------------------------------------------------------------------ meter pipeline


@st.composite
def mutated(draw):
    """A recorded telegram with a few bytes changed, inserted or deleted (not "/" or
    "!": those cut it into another frame, whose CRC then fails, as it should)."""
    t = draw(st.sampled_from(GOOD))
    body = bytearray(t[: t.rindex(b"!") + 1])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(1, len(body) - 2))  # the "/" and "!" stay
        op = draw(st.integers(0, 2))
        b = draw(
            st.one_of(st.integers(0, 255), st.sampled_from(b"0123456789.*()-:WS\r\n")).filter(lambda x: x not in b"/!")
        )
        if op == 0:
            body[i] = b
        elif op == 1:
            body.insert(i, b)
        else:
            del body[i]
    return bytes(body)


class Pub:
    """A hub that keeps what the pipeline publishes."""

    def __init__(self):
        self.bodies = []
        self.sample = None
        self.seq = 0

    def publish(self, body, cut, raw, **kw):
        self.bodies.append((bytes(body), bytes(raw)))
        self.seq += 1


def pipeline(hub):
    from meter import Pipeline

    return Pipeline(hub, 3072, 120)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated(), chunks=CHUNKS)
def test_pipeline_publishes_only_what_the_general_decoder_reads(body, chunks):
    hub = Pub()
    p = pipeline(hub)
    data = with_crc(body)
    for i in range(0, len(data), chunks[0]):
        p.feed(data[i : i + chunks[0]])
    p.end()
    assert p.rejected_crc == 0
    for published, raw in hub.bodies:
        assert published == general(raw), "the device path wrote another value than the general decoder"
        assert published == (Encoder(3072, 120).encode(raw) or (general(raw),))[0]


@settings(max_examples=300, deadline=None)
@given(t=st.sampled_from(GOOD), i=st.integers(1, 10**6), b=st.integers(0, 255))
def test_one_changed_byte_is_never_published(t, i, b):
    i = 1 + i % (t.rindex(b"!") - 1)  # inside what the CRC covers, after the "/"
    if t[i] == b or b in b"/!" or t[i] in b"/!":
        return  # unchanged, or a telegram cut in two: not this test's case
    bad = t[:i] + bytes([b]) + t[i + 1 :]
    hub = Pub()
    p = pipeline(hub)
    p.feed(bad)
    p.end()
    assert hub.bodies == [] and p.rejected_crc == 1


# ------------------------------------------------------------------ HTTP heads

TOKEN = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30)
METHODS = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", ""]), TOKEN)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/",
            "/api/v1/reading",
            "/api/v1/status",
            "/api/v1/telegram",
            "/static/app.js",
            "/static/../config.json",
            "/static/%2e%2e/x",
            "/api/v1/settings",
            "/api/v1/login",
            "/metrics",
            "/api",
            "/api/v1/data",
            "/%",
            "/%zz",
            "/%ff",
            "*",
            "",
        ]
    ),  # fmt: skip
    TOKEN.map(lambda s: "/" + s),
)
VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", "", "HTTP/1.1 x"])
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Expect",
            "Accept-Encoding",
            "Content-Type",
            "Authorization",
            "Cookie",
            "If-None-Match",
            " Host",
            "X",
        ]
    ),  # fmt: skip
    TOKEN,
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "5",
            "-1",
            "99999999999",
            "2049",
            "chunked",
            "close",
            "keep-alive",
            "100-continue",
            "gzip",
            "application/json",
            "Bearer x",
            "session=x",
            "abc",
        ]
    ),  # fmt: skip
    TOKEN,
)


WORD = st.text(st.characters(codec="ascii", categories=["L", "N", "P", "S"]), max_size=20)


@st.composite
def requests(draw):
    """Mostly well-formed heads with odd parts (bodies, lengths, encodings, escapes),
    some with any text in any place, some plain noise."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(min_size=1, max_size=300))
    tidy = kind > 3
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) if tidy else METHODS)
    path = draw(st.one_of(PATHS, WORD.map(lambda w: "/" + w), WORD.map(lambda w: "/api/v1/reading?" + w)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]) if tidy else VERSIONS)
    names = st.sampled_from(["Content-Length", "Connection", "Expect", "Accept-Encoding", "Content-Type",
                             "Authorization", "Cookie", "If-None-Match", "Host"]) if tidy else HEADER_NAMES  # fmt: skip
    heads = ["%s: %s" % h for h in draw(st.lists(st.tuples(names, HEADER_VALUES), max_size=8))]
    eol = "\r\n" if tidy else draw(st.sampled_from(["\r\n", "\n"]))
    head = eol.join(["%s %s %s" % (method, path, version), *heads]) + eol + (eol if tidy or draw(st.booleans()) else "")
    return head.encode("latin-1", "replace") + draw(st.binary(max_size=100))


@pytest.fixture(scope="module", params=["cpython", "micropython"])
def firmware(request, tmp_path_factory):
    sim = MeterServer()
    args = ["--source", sim.source] + (["--mp"] if request.param == "micropython" else [])
    fw = Firmware(tmp_path_factory.mktemp("fuzz"), *args)
    sim.accept()
    sim.send(GOOD[0])
    fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="a reading")
    yield fw
    sim.close()
    fw.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, end the sending side, read until the server closes (10 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                k = s.recv(65536)
            except ConnectionResetError:
                break
            if not k:
                break
            out += k
        return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=requests())
def test_http_random_heads_never_500_never_hang(firmware, data):
    try:
        out = exchange(firmware.port, data)
    except TimeoutError:
        pytest.fail("the server neither answered nor closed within 10 s: %r" % data[:200])
    for m in re.finditer(rb"HTTP/1\.1 (\d{3}) ", out):
        status = int(m.group(1))
        assert status < 500, "HTTP %d for %r:\n%r" % (status, data[:200], out[:300])
    event("answer %s" % (out[9:12].decode() if out else "none (closed)"))  # --hypothesis-show-statistics
    if out:
        assert out.startswith(b"HTTP/1.1 "), out[:100]
    assert firmware.get("/api/v1/reading")[0] == 200  # still up


def test_http_fuzz_left_no_errors(firmware):
    """After the fuzzing above: no exception logged, no 500 counted."""
    s = firmware.status()
    assert not [x for x in s["log"] if "Error" in x or "Traceback" in x], s["log"]
    assert firmware.proc.poll() is None
    assert json.loads(firmware.get("/api/v1/reading")[2])["meter"]
