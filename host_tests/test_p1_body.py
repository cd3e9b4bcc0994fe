"""The device path `p1.body` (frame -> JSON body in one pass) against the general
path `dumps(readings(parse(frame)))`: byte-identical whenever it takes a telegram,
and it takes every recorded one. Hypothesis mutates recorded telegrams line by
line (units, signs, zeros, stamps, M-Bus channels, duplicates, noise) to find
a telegram where the two differ."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MP_TESTS_DIR, describe
from p1util import recorded
from p1.body import Encoder
from p1.bodyread import items
from p1.jsonout import dumps
from p1.obis import UNITS
from p1.parse import parse
from p1.readings import readings


def general(raw: bytes, std_offset: int = 120) -> tuple[bytes, list]:
    t = parse(raw, "ok", std_offset)
    return dumps(readings(t)).encode(), t.errors


def frame_of(path) -> bytes:
    from p1util import frames

    fs, _, _ = frames(path.read_bytes())
    assert len(fs) == 1
    return fs[0]


RECORDED = [frame_of(p) for p in recorded()]
NAMES = [p.name for p in recorded()]


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.name)
def test_every_recorded_telegram_takes_the_device_path_and_equals_the_general_one(path):
    raw = frame_of(path)
    for off in (120, 60, -300):
        got = Encoder(3072, off).encode(raw)
        assert got is not None, "the device path refused a recorded telegram"
        body, cut = got
        want, errors = general(raw, off)
        assert errors == []
        assert body == want
        assert body[cut:].startswith(b", ") or body[cut:] == b"}"
        assert body[:cut].endswith(b'"') and b'"meter": ' in body[:cut]


def test_nordic_telegrams_never_load_the_rare_lines_module(monkeypatch):
    """p1.bodyrare (M-Bus channels, unknown objects) is imported at the first such
    line only: meters without them never pay its RAM."""
    import sys

    import p1

    monkeypatch.delitem(sys.modules, "p1.bodyrare", raising=False)
    monkeypatch.delattr(p1, "bodyrare", raising=False)
    enc = Encoder()
    for name in ("se-lg-e360-01.txt", "fi-aidon-7534-02.txt", "se-sagemcom-ell5-01.txt", "xx-aidon-6534-03.txt"):
        assert enc.encode(RECORDED[NAMES.index(name)]) is not None
    assert "p1.bodyrare" not in sys.modules
    assert enc.encode(RECORDED[NAMES.index("nl-dsmr5-iskra-01.txt")]) is not None
    assert "p1.bodyrare" in sys.modules
    assert enc._mb is None  # its M-Bus state does not outlive the telegram


def test_every_table_line_has_its_own_duplicate_bit():
    """The encoder marks a known object seen by its table index >> 4: one bit per
    line while the table's lines are 16 bytes or longer."""
    from p1.obis import T

    starts = [i + 1 for i in range(len(T) - 1) if T[i] == 0x0A]
    assert len({i >> 4 for i in starts}) == len(starts)
    assert max(starts) >> 7 < len(Encoder()._seen)


def test_items_walks_names_and_exact_value_texts():
    body, _ = Encoder().encode(RECORDED[[p.name for p in recorded()].index("se-lg-e360-01.txt")])
    got = dict(items(body))
    assert got["timestamp"] == '"2021-02-22T16:19:00+02:00"'
    assert got["meter"] == '"LGF5E360"'
    assert got["energy_import_kwh"] == "896.020"
    assert got["l3_current_a"] == "0.3"
    assert list(got)[:3] == ["timestamp", "meter", "energy_import_kwh"]


def test_items_of_strings_with_escapes_and_nulls():
    body = b'{"timestamp": null, "meter": "a\\"b, \\\\c", "x": "", "y": -1.5}'
    assert list(items(body)) == [("timestamp", "null"), ("meter", '"a\\"b, \\\\c"'), ("x", '""'), ("y", "-1.5")]


# ---- generated telegrams ----------------------------------------------------------

VALUE_BITS = st.sampled_from(
    ["0", "00", "1", "9", ".", "-", "+", "*", "kWh", "Wh", "MWh", "mWh", "kwh", "W", "kW", "kVArh", "kvar",
     "varh", "V", "A", "m3", "GJ", "m\xb3", "(", ")", "W", "S", "\x02", '"', "\\", "\xe9", " ", "210222161900"]
)  # fmt: skip
EXTRA_LINES = st.sampled_from(
    [
        "1-0:99.97.0(1)(0-0:96.7.19)(210101000000W)(0000000010*s)",
        "1-0:99.97.0(0)(0-0:96.7.19)",
        "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.695*kW)",
        "1-0:1.6.0(200509134558S)(02.589*kW)",
        "0-1:24.1.0(003)",
        "0-1:24.1.0(007)",
        "0-2:24.1.0(004)",
        "0-1:24.2.1(170102161005W)(00000.107*m3)",
        "0-2:24.2.1(170102161005W)(00000.107*GJ)",
        "0-1:24.2.3(200512134558S)(00112.384*m3)",
        "0-1:24.2.1(700101010000W)(00000000)",
        "0-1:24.2.1()(00001.000*m3)",
        "0-1:24.2.1(00001.000*m3)",
        "0-3:24.3.0(121030140000)(00)(60)(1)(0-1:24.2.1)(m3)",
        "(00001.001)",
        "0-1:96.1.0(3232323241424344313233343536373839)",
        "0-0:96.13.0()",
        "0-0:96.13.0(303132)",
        "1-0:1.8.0*255(00001.000*kWh)",
        "1-0:32.7.0(0230.0*V)",
        "0-0:1.0.0(210222161900)",
        "0-0:96.7.21(-0005)",
        "/SECOND",
        "garbage line",
        "1-0:1.8.0",
        "1-0:2.8.0(1*kWh)(2*kWh)",
        "1-0:3.8.0(0001*kvarh)x",
    ]
)


def mutate_line(line: str, draw) -> str:
    p = line.find("(")
    if p <= 0:
        return line
    kind = draw(st.integers(0, 3))
    if kind == 0:  # replace the value group
        inner = "".join(draw(st.lists(VALUE_BITS, max_size=6)))
        return line[:p] + "(" + inner + ")"
    if kind == 1:  # change the unit spelling
        star = line.find("*")
        if star < 0:
            return line
        return line[: star + 1] + draw(VALUE_BITS) + ")"
    if kind == 2:  # drop or add leading zeros / a sign
        q = p + 1
        return line[:q] + draw(st.sampled_from(["", "0", "000", "-", "+", "-0"])) + line[q:].lstrip("0")
    return line[:p] + line[p:].replace(".", "", 1)  # an integer


@st.composite
def telegrams(draw):
    base = draw(st.sampled_from(RECORDED)).decode("latin-1")
    lines = base.split("\r\n")
    ident, body, trailer = lines[0], [x for x in lines[1:] if x and not x.startswith("!")], "!"
    ops = draw(st.lists(st.integers(0, 6), max_size=6))
    for op in ops:
        if not body:
            break
        i = draw(st.integers(0, len(body) - 1))
        if op == 0:
            body.pop(i)
        elif op == 1:
            body.insert(i, body[i])
        elif op == 2:
            j = draw(st.integers(0, len(body) - 1))
            body[i], body[j] = body[j], body[i]
        elif op in (3, 4):
            body[i] = mutate_line(body[i], draw)
        elif op == 5:
            body.insert(i, draw(EXTRA_LINES))
        else:
            body.insert(i, "")
    sep = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    if draw(st.booleans()):
        ident = ident + draw(st.sampled_from(["", "\x02", '"', "\\", "\xe9", " x"]))
    text = sep.join([ident, ""] + body + [trailer])
    return text.encode("latin-1")


@settings(max_examples=1500, deadline=None)
@given(raw=telegrams(), off=st.sampled_from([120, 60, 0, -330]))
def test_device_path_equals_the_general_path_or_declines(raw, off):
    got = Encoder(3072, off).encode(raw)
    if got is None:
        return
    want, errors = general(raw, off)
    assert errors == [], "the device path took a telegram the general path finds errors in"
    assert got[0] == want


@settings(max_examples=300, deadline=None)
@given(noise=st.binary(max_size=300))
def test_any_bytes_after_a_slash_never_crash_the_device_path(noise):
    enc = Encoder(512)
    for raw in (b"/" + noise, b"/X\r\n\r\n" + noise + b"\r\n!"):
        got = enc.encode(raw)
        if got is not None:
            assert got[0] == general(raw)[0]


NUMBERS = st.builds(
    lambda sign, whole, frac, zeros: sign + whole + frac + zeros,
    st.sampled_from(["", "", "-", "+"]),
    st.text("0123456789", max_size=9),
    st.one_of(st.just(""), st.text("0123456789", max_size=5).map(lambda d: "." + d)),
    st.sampled_from(["", "", "0", "000", ".", ".0"]),
)
UNIT_SPELLINGS = sorted(
    {w.split(" ")[0] for line in UNITS.decode("latin-1").split("\n") if line for w in line[2:].split("|")[1:] if w}
    | {"", "mWh", "kWH", "Wh ", "m^3"}
)


@st.composite
def number_telegrams(draw):
    """The E360 telegram with one line of a number (any sign, zeros, decimals, unit
    spelling) put in somewhere."""
    line = draw(st.sampled_from([
        "1-0:1.8.0(%s*%s)", "1-0:2.7.0(%s*%s)", "1-0:32.7.0(%s*%s)", "1-0:3.8.0(%s*%s)", "0-0:96.7.21(%s)",
        "0-1:24.2.1(200512134558S)(%s*%s)", "0-2:24.2.1()(%s*%s)", "1-0:99.97.0(1)(0-0:96.7.19)(190326095015W)(%s*%s)",
    ]))  # fmt: skip
    number = draw(NUMBERS)
    text = line % ((number, draw(st.sampled_from(UNIT_SPELLINGS))) if line.count("%s") == 2 else (number,))
    lines = RECORDED[NAMES.index("se-lg-e360-01.txt")].decode("latin-1").split("\r\n")
    lines = [x for x in lines if not x.startswith(text[: text.index("(") + 1])]
    lines.insert(draw(st.integers(2, len(lines) - 2)), text)
    return "\r\n".join(lines).encode("latin-1")


@settings(max_examples=1500, deadline=None)
@given(raw=number_telegrams(), off=st.sampled_from([120, 60, -330]))
def test_numbers_in_every_unit_equal_the_general_path(raw, off):
    """Signs, leading and trailing zeros, decimals and every unit spelling (decimal
    point moved both ways): the device path writes what the general path does, and
    takes every line the general path finds no error in."""
    want, errors = general(raw, off)
    got = Encoder(3072, off).encode(raw)
    if errors:
        assert got is None
    else:
        assert got is not None, "the device path declined a telegram without errors"
        assert got[0] == want


def test_a_body_too_big_for_the_buffer_goes_to_the_general_path():
    raw = RECORDED[0]
    assert Encoder(256).encode(raw) is None
    assert Encoder(3072).encode(raw) is not None


def _generated_cases(n: int, strategy=None) -> list[tuple[int, bytes]]:
    """`n` generated telegrams (deterministic: derandomized Hypothesis)."""
    out: list[tuple[int, bytes]] = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None)
    @given(raw=telegrams() if strategy is None else strategy, off=st.sampled_from([120, 60, -330]))
    def collect(raw, off):
        out.append((off, raw))

    collect()
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("port", ["webassembly", "unix"])
def test_micropython_gives_the_same_bodies(port, tmp_path, micropython, unix_micropython):
    """Both MicroPython ports: the general path equals CPython's byte for byte on
    recorded and generated telegrams, and the device path equals it or declines."""
    cases = [(120, r) for r in RECORDED] + _generated_cases(400) + _generated_cases(200, number_telegrams())
    f = tmp_path / "cases.txt"
    with f.open("w") as out:
        for off, raw in cases:
            out.write("%d %s %s\n" % (off, raw.hex(), general(raw, off)[0].hex()))
    script = MP_TESTS_DIR / "body_cases.py"
    if port == "webassembly":
        r = micropython([script, f], timeout=280)
    else:
        r = unix_micropython([script, f], timeout=280)
    assert r.returncode == 0, describe(r)
    took = int(r.stdout.split(b"took ")[1].split(b",")[0])
    assert took >= len(RECORDED), r.stdout


def test_pipeline_writes_bodies_into_the_framers_buffer_between_frames():
    """The meter pipeline lends the framer's buffer to the encoder: several telegrams
    in one chunk (the buffer refilled right after each body) all come out exact."""
    from hub import Hub
    from meter import Pipeline
    from p1util import body_of

    names = ["se-lg-e360-01.txt", "nl-dsmr5-iskra-01.txt", "se-sagemcom-ell5-01.txt", "at-sagemcom-t210dr-01.txt"]
    datas = [p.read_bytes() for p in recorded() if p.name in names]
    hub = Hub()
    sub = hub.subscribe(8)
    pipe = Pipeline(hub, 3072, 120)
    assert pipe.encoder.buf is pipe.framer._buf
    assert pipe.feed(b"".join(datas) + b"".join(datas)) == 2 * len(datas)
    got = [sub.get_nowait() for _ in range(2 * len(datas))]
    for s, data in zip(got, datas + datas):
        assert (s.body, s.cut) == body_of(data) and s.raw == data
