"""Framing: every recorded telegram, any chunking, and every kind of bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p1util import BAD_CRC, frames, recorded

FILES = recorded()
STREAM = b"".join(p.read_bytes() for p in FILES)
E360 = (FILES[0].parent / "se-lg-e360-01.txt").read_bytes()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_recorded_telegram_is_one_frame_with_the_right_crc(path):
    data = path.read_bytes()
    got, crcs, counters = frames(data)
    assert got == [data]
    assert crcs == ["bad" if path.name in BAD_CRC else "ok"]
    assert counters["skipped_bytes"] == 0
    assert counters["telegrams"] == 1
    assert counters["crc_errors"] == (1 if path.name in BAD_CRC else 0)


def test_three_digit_crc_is_accepted_when_it_matches():
    data = (FILES[0].parent / "nl-nwa-warmtelink-01.txt").read_bytes()
    assert data.rstrip().endswith(b"!B9F")
    assert frames(data)[1] == ["ok"]
    wrong = data.replace(b"!B9F", b"!B9E")
    assert frames(wrong)[1] == ["bad"]


def test_whole_stream_byte_at_a_time_equals_whole():
    whole = frames(STREAM)
    assert frames(STREAM, [1]) == whole
    assert len(whole[0]) == len(FILES)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_frames_and_counters(chunks):
    noisy = b"\x00garbage\xff" + STREAM + b"tail!"
    assert frames(noisy, chunks) == frames(noisy)


def test_noise_between_telegrams_is_skipped_and_counted():
    noise = b"\x00\xff\x13line noise\r\n"
    got, crcs, c = frames(noise + E360 + noise + E360 + noise)
    assert got == [E360, E360]
    assert crcs == ["ok", "ok"]
    assert c["skipped_bytes"] == 3 * len(noise)


def test_trailing_garbage_stops_exactly_at_the_telegram_end():
    got, _, c = frames(E360 + b"12345", [7])
    assert got == [E360]
    assert c["skipped_bytes"] == 5


def test_cut_telegram_followed_by_a_new_one_is_dropped_and_counted():
    cut = E360[: len(E360) // 2]
    got, crcs, c = frames(cut + E360, [13])
    assert got == [E360]
    assert crcs == ["ok"]
    assert c["truncated"] == 1


def test_stream_ending_inside_a_telegram_counts_it_truncated():
    got, _, c = frames(E360 + E360[:100])
    assert got == [E360]
    assert c["truncated"] == 1


def test_oversized_telegram_is_dropped_and_the_next_one_framed():
    big = E360.replace(b"\r\n\r\n", b"\r\n" + b"0-0:96.13.0(" + b"41" * 2000 + b")\r\n", 1)
    got, _, c = frames(big + E360, [64], size=3072)
    assert got == [E360]
    assert c["oversized"] == 1


def test_buffer_never_grows():
    from p1.framer import Framer

    fr = Framer(1024)
    buf = fr._buf
    for _ in range(3):
        fr.feed(E360 * 3 + b"/" + b"x" * 5000)
        while fr.next_frame() is not None:
            pass
    assert fr._buf is buf and len(buf) == 1024


def test_telegram_without_crc_is_marked_none():
    old = E360[: E360.rindex(b"!") + 1] + b"\r\n"
    got, crcs, c = frames(old + E360)
    assert got == [old, E360]
    assert crcs == ["none", "ok"]
    assert c["no_crc"] == 1


def test_bad_crc_is_flagged_not_dropped():
    bad = E360.replace(b"230.1*V", b"231.1*V")
    assert frames(bad)[1] == ["bad"]


def test_garbage_trailer_is_a_crc_error():
    bad = E360[: E360.rindex(b"!") + 1] + b"ZZZZ\r\n"
    assert frames(bad)[1] == ["bad"]


def test_missing_final_crlf_is_finished_at_end_of_stream():
    data = E360.rstrip(b"\r\n")
    got, crcs, _ = frames(data)
    assert got == [data] and crcs == ["ok"]


def test_feeding_before_draining_is_an_error():
    from p1.framer import Framer

    fr = Framer()
    fr.feed(E360 + E360)
    assert fr.next_frame() is not None
    with pytest.raises(ValueError):
        fr.feed(E360)


@pytest.mark.parametrize(
    "trailer, verdict",
    [
        (b"", "none"),
        (b"{crc}", "ok"),
        (b"{lower}", "ok"),
        (b"0{crc}", "bad"),  # five digits
        (b" {crc3}", "bad"),
        (b"+{crc3}", "bad"),
        (b"0x{crc2}", "bad"),  # int(..., 16) would take the prefix
        (b"{crc3}_", "bad"),
    ],
)
def test_the_crc_trailer_is_one_to_four_hex_digits_only(trailer, verdict):
    from p1.crc import crc16

    body = E360[: E360.rindex(b"!") + 1]
    c = b"%04X" % crc16(body)
    t = trailer.replace(b"{crc}", c).replace(b"{lower}", c.lower())
    t = t.replace(b"{crc3}", c[1:]).replace(b"{crc2}", c[2:])
    assert frames(body + t + b"\r\n")[1] == [verdict]


def test_every_crc_loop_gives_the_same_crc(monkeypatch):
    """p1.crc picks its fastest loop at import; the portable one (what runs where
    viper does not) is checked here against it and the known values."""
    import importlib
    import sys

    import p1
    import p1.crc as original

    fast = original.crc16
    monkeypatch.setattr(p1, "crc", original)  # the import below rebinds it: restored after
    for name in ("p1._crc_viper", "p1._crc_words"):
        monkeypatch.setitem(sys.modules, name, None)  # the import fails
    monkeypatch.delitem(sys.modules, "p1.crc")
    portable = importlib.import_module("p1.crc").crc16
    monkeypatch.setitem(sys.modules, "p1.crc", original)
    assert portable is not fast and portable.__module__ == "p1.crc"
    for data in (b"", b"/", STREAM[:1000], STREAM[1:1001], bytes(range(256)) * 3):
        assert portable(data) == fast(data) == fast(memoryview(data)) == _crc_bitwise(data)
    assert portable(b"/LGF5E360\r\n\r\n1-0:1.8.0(00000896.020*kWh)\r\n!") == 0x85E2


def _crc_bitwise(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xA001 if crc & 1 else 0)
    return crc
