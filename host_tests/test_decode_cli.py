"""The decode command: JSON Lines in stream order, identical from every entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

from p1util import ROOT, TELEGRAMS, recorded

GOLDEN = ROOT / "host_tests" / "golden" / "decode-recorded.jsonl"


def run(*args: str, stdin: bytes | None = None, module: bool = False) -> subprocess.CompletedProcess:
    if module:
        cmd = [sys.executable, "-m", "p1", "decode", *args]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "firmware"))
    else:
        cmd = [sys.executable, str(ROOT / "tools" / "p1tool.py"), "decode", *args]
        env = None
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=60, env=env)


def test_recorded_telegrams_match_the_reviewed_golden_output():
    out = run(*map(str, recorded()))
    assert out.returncode == 0, out.stderr
    assert out.stdout == GOLDEN.read_bytes()


def test_module_entry_point_is_byte_identical():
    files = list(map(str, recorded()))
    assert run(*files, module=True).stdout == run(*files).stdout


def test_stdin_stream_with_noise_gives_telegrams_in_stream_order():
    stream = b"noise" + b"".join(p.read_bytes() for p in recorded()) + b"\x00"
    out = run(stdin=stream)
    assert out.returncode == 0
    assert out.stdout == GOLDEN.read_bytes()


def test_numbers_are_json_numbers_with_the_meters_digits():
    line = run(str(TELEGRAMS / "se-lg-e360-01.txt")).stdout.decode()
    assert '"1-0:1.8.0": {"value": 896.020, "unit": "kWh"}' in line
    obj = json.loads(line, parse_float=Decimal)
    assert obj["ident"] == "LGF5E360" and obj["crc"] == "ok"
    assert obj["objects"]["1-0:32.7.0"] == {"value": Decimal("230.1"), "unit": "V"}
    assert obj["objects"]["0-0:1.0.0"] == {"value": "2021-02-22T16:19:00+02:00"}


def test_tz_option_sets_the_standard_offset():
    line = run("--tz", "+01:00", str(TELEGRAMS / "nl-dsmr5-iskra-am550-02.txt")).stdout.decode()
    assert '"value": "2020-04-26T22:33:25+02:00"' in line  # S = standard + 1 h


def test_bad_crc_is_decoded_and_flagged():
    obj = json.loads(run(str(TELEGRAMS / "se-aidon-6534-02-edited.txt")).stdout)
    assert obj["crc"] == "bad"


def test_malformed_lines_are_listed_with_their_text():
    data = (TELEGRAMS / "se-lg-e360-01.txt").read_bytes().replace(b"(230.1*V)", b"(23x.1*V)")
    obj = json.loads(run(stdin=data).stdout)
    assert obj["crc"] == "bad"
    assert obj["errors"] == [{"line": "1-0:32.7.0(23x.1*V)", "error": "bad number"}]
    assert "1-0:52.7.0" in obj["objects"]


def test_usage_errors_and_missing_files():
    assert run("--tz", "nonsense").returncode == 2
    out = run(str(TELEGRAMS / "nope.txt"), str(TELEGRAMS / "se-lg-e360-01.txt"))
    assert out.returncode == 1
    assert b"cannot open" in out.stderr
    assert out.stdout.count(b"\n") == 1


# --- the one-pass writer (p1.__main__.line_json) against the general path ---------------


def _general(frame: bytes, crc: str, std_offset: int) -> str:
    from p1.__main__ import telegram_json
    from p1.jsonout import dumps
    from p1.parse import parse

    return dumps(telegram_json(parse(frame, crc, std_offset)))


def _frames(data: bytes) -> list[tuple[bytes, str]]:
    from p1.framer import Framer

    fr = Framer(8192)
    fr.feed(data)
    out = []
    while (f := fr.next_frame()) is not None:
        out.append((bytes(f), fr.crc))
    if (f := fr.end()) is not None:
        out.append((bytes(f), fr.crc))
    return out


def test_one_pass_writer_takes_the_common_telegrams_and_matches_the_general_path():
    from p1.__main__ import line_json

    taken = 0
    for path in recorded():
        for frame, crc in _frames(path.read_bytes()):
            for off in (120, 60, -300):
                got = line_json(frame, crc, off)
                if got is not None:
                    taken += 1
                    assert got == _general(frame, crc, off), path.name
    assert taken >= 3 * 12, "the one-pass writer should take most recorded telegrams"
    for name in ("se-lg-e360-01.txt", "nl-dsmr5-iskra-01.txt", "se-aidon-6534-01.txt"):
        frame, crc = _frames((TELEGRAMS / name).read_bytes())[0]
        assert line_json(frame, crc, 120) is not None, name


# Edits of single lines that the general path treats in every way it can: kept
# with another value, reported as malformed, duplicated, continued, non-ASCII.
_EDITS = [
    (b"(0", b"(+0"), (b"(0", b"(-0"), (b".", b""), (b".", b".."), (b"*kW", b"*W"), (b"*kW", b"*kw"),
    (b"*kW", b"*MW"), (b"*kW", b"*"), (b"*kW", b""), (b"*kWh", b"*Wh"), (b"*kWh", b"*foo"),
    (b"*V", b"*v"), (b"*A", b"*\xb2"), (b"(0", b"(\xb20"), (b"(", b"(("), (b")", b"))"), (b")", b")()"),
    (b")", b")(1)"), (b")", b""), (b"(", b"*255("), (b"(", b"()("), (b"W)", b"X)"), (b"W)", b")"),
    (b"S)", b"W)"), (b"(2", b"(9"), (b"0)", b".)"), (b"0)", b"0*kWh)"), (b"(", b"\r\n("), (b"\\", b'"'),
    (b"0", b"\x7f"), (b"0", b"\xe4"), (b"\r\n", b"\n"), (b"1-0:", b"1-x:"), (b"1-0:", b"(1-0:"),
    (b"0-1:", b"0-9:"), (b"0-1:24.1.0(003)", b"0-1:24.1.0(007)"), (b"0-1:24.1.0(003)", b"0-1:24.1.0(3.0)"),
    (b"(0", b"()0"), (b"(0", b"(0x"), (b".", b".*"), (b"(2", b"(2*"), (b"*s)", b"*)"), (b"(0)(", b"()("),
    (b"(00000000)", b"(00000.000)"), (b"(0-0:96.7.19)", b"(-5)"), (b"(0-0:96.7.19)", b"(+5.5)"),
    (b"(0-0:96.7.19)", b"(5.)"), (b"W)(", b")("), (b"(1)(", b"(1)()("),
]  # fmt: skip
# Lines of a code the table does not know, each inserted into every telegram.
_UNKNOWN = [
    b"1-0:0.0.9(abc)", b"1-0:0.0.9(190326095015W)", b"1-0:0.0.9(190326095015)", b"1-0:0.0.9(-12.5*kW)",
    b"1-0:0.0.9()", b"1-0:0.0.9(12)(x)(3.50)(*m3)", b"1-0:0.0.9(991399095015W)(1)", b"1-0:0.0.9(7*)",
    b"1-0:0.0.9*255(1*kWh)", b"1-0:0.x.9(1)", b'1-0:0.0.9(a"b\\c)',
]  # fmt: skip


def _mutants(data: bytes):
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line or line[:1] in (b"/", b"!"):
            continue
        for old, new in _EDITS:
            if old in line:
                yield b"\n".join(lines[:i] + [line.replace(old, new, 1)] + lines[i + 1 :])
        yield b"\n".join(lines[: i + 1] + [line] + lines[i + 1 :])  # duplicated
        yield b"\n".join(lines[:i] + [b"/second ident\r"] + lines[i:])
    for extra in _UNKNOWN:
        yield b"\n".join(lines[:2] + [extra + b"\r"] + lines[2:])


def test_one_pass_writer_matches_the_general_path_on_mutated_telegrams():
    from p1.__main__ import line_json, telegram_line

    checked = taken = 0
    for name in ("se-lg-e360-01.txt", "nl-dsmr5-iskra-01.txt", "nl-dsmr5-iskra-am550-02.txt",
                 "se-sagemcom-ell5-01.txt", "be-fluvius-emucs-01.txt", "nl-dsmr42-kaifa-01.txt"):  # fmt: skip
        for data in _mutants((TELEGRAMS / name).read_bytes()):
            for frame, crc in _frames(data):
                want = _general(frame, crc, 120)
                assert telegram_line(frame, crc, 120) == want, (name, frame)
                checked += 1
                taken += line_json(frame, crc, 120) is not None
    assert checked > 1000 and 0 < taken < checked, (checked, taken)
