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
