"""tools/simulate.py: telegram layout, exact energy integration, DST, noise, CLI outputs.

Everything is checked from the written bytes with an independent reference
(regex framing + p1.crc), real subprocesses, sockets and a real pty.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
TELEGRAMS = ROOT / "host_tests" / "telegrams"
SIM = ROOT / "tools" / "simulate.py"
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "tools")]

import simulate  # noqa: E402
from p1.crc import crc16  # noqa: E402
from simulate import Meter  # noqa: E402

WH = 3_600_000  # W*ms per Wh
START = "2024-06-20T09:00:00Z"  # summer noon in Finland: load and solar export
FRAME = re.compile(rb"/[^/]*?![0-9A-F]{4}\r\n", re.S)


# --- reference helpers ---------------------------------------------------------


def crc_ok(tg: bytes) -> bool:
    m = re.fullmatch(rb"(/.*!)([0-9A-F]{4})\r\n", tg, re.S)
    return bool(m) and crc16(m[1]) == int(m[2], 16)


def lines(tg: bytes) -> list[tuple[str, list[str]]]:
    """(OBIS, value groups) of every data line, in order."""
    head, _, rest = tg.decode("ascii").partition("\r\n\r\n")
    body = rest[: rest.rindex("!")]
    out = []
    for line in body.split("\r\n")[:-1]:
        m = re.fullmatch(r"([^()]+)((?:\([^()]*\))+)", line)
        assert m, line
        out.append((m[1], re.findall(r"\(([^()]*)\)", m[2])))
    return out


def values(tg: bytes) -> dict[str, str]:
    return {obis: groups[-1] for obis, groups in lines(tg)}


def num(group: str) -> int:
    """`00012.345*kWh` -> 12345 (units of the last decimal)."""
    return int(group.split("*")[0].replace(".", ""))


def reference_clean(data: bytes) -> bool:
    """Exactly one complete, CRC-valid telegram of at most 3072 bytes (garbage before it ok)."""
    starts = [i for i, b in enumerate(data) if b == 0x2F]
    frames = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)])]
    good = [f for f in frames if crc_ok(f) and len(f) <= 3072]
    return len(good) == 1


def shape(group: str) -> str:
    return re.sub(r"[WS]$", "X", re.sub(r"\d", "9", group))


def recorded(name: str) -> bytes:
    return (TELEGRAMS / name).read_bytes()


# --- layout ------------------------------------------------------------------------


def test_fi_telegram_has_the_e360_layout() -> None:
    ref = lines(recorded("se-lg-e360-01.txt"))
    for seed in range(5):
        tg = Meter(seed=seed, start=START).telegram("fi")
        assert tg.startswith(b"/LGF5E360\r\n\r\n0-0:1.0.0(")
        assert crc_ok(tg)
        got = lines(tg)
        assert [o for o, _ in got] == [o for o, _ in ref]
        assert [[shape(g) for g in gs] for _, gs in got] == [[shape(g) for g in gs] for _, gs in ref]


def test_dsmr5_telegram_has_the_iskra_layout() -> None:
    ref = [(o, gs) for o, gs in lines(recorded("nl-dsmr5-iskra-01.txt")) if not o.startswith("0-2:")]
    special = {  # lines whose recorded sample differs in content, not layout
        "0-0:96.1.1": r"[0-9A-F]{32}",
        "0-1:96.1.0": r"[0-9A-F]{34}",
        "1-0:99.97.0": r"1,0-0:96\.7\.19,\d{12}[WS],\d{10}\*s",
        "1-0:31.7.0": r"\d+\.\d\d\*A",
        "1-0:51.7.0": r"\d+\.\d\d\*A",
        "1-0:71.7.0": r"\d+\.\d\d\*A",
    }
    for seed in range(5):
        tg = Meter(seed=seed, start=START, dialect="dsmr5").telegram()
        assert tg.startswith(b"/ISk5\\2MT382-1000\r\n\r\n1-3:0.2.8(50)\r\n")
        assert crc_ok(tg)
        got = lines(tg)
        assert [o for o, _ in got] == [o for o, _ in ref]
        for (obis, groups), (_, ref_groups) in zip(got, ref):
            if obis in special:
                assert re.fullmatch(special[obis], ",".join(groups)), (obis, groups)
            else:
                assert [shape(g) for g in groups] == [shape(g) for g in ref_groups], obis


@pytest.mark.parametrize("dialect", ["fi", "dsmr5"])
def test_expected_is_exactly_what_was_written(dialect: str) -> None:
    m = Meter(seed=3, start=START, dialect=dialect)
    for _ in range(50):
        tg = m.telegram()
        exp = m.expected()
        written = values(tg)
        assert exp.keys() == written.keys()
        for obis, raw in written.items():
            plain = re.sub(r"^0+(?=\d)", "", raw.split("*")[0]) if "*" in raw else raw
            assert exp[obis] == plain, (obis, raw)
        m.step(10)


def test_expected_example_values() -> None:
    m = Meter(seed=1, start=START)
    text = m.telegram().decode()
    exp = m.expected()
    assert re.fullmatch(r"[1-9]\d*\.\d{3}", exp["1-0:1.8.0"])
    assert f"1-0:1.8.0({exp['1-0:1.8.0']:0>12}*kWh)" in text
    assert re.fullmatch(r"2\d\d\.\d", exp["1-0:32.7.0"])
    assert re.fullmatch(r"\d{1,3}\.\d", exp["1-0:31.7.0"])
    assert exp["0-0:1.0.0"] == "240620120000S"


# --- physics -------------------------------------------------------------------------

FI_POWER = {"1-0:1.8.0": "1-0:1.7.0", "1-0:2.8.0": "1-0:2.7.0"}
FI_POWER |= {"1-0:3.8.0": "1-0:3.7.0", "1-0:4.8.0": "1-0:4.7.0"}


def check_integration(dialect: str, seed: int, steps_ms: list[int]) -> int:
    """Recompute every counter from the written power alone; return telegrams checked."""
    m = Meter(seed=seed, start=START, dialect=dialect)
    prev = values(m.telegram())
    regs = list(FI_POWER) if dialect == "fi" else ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1"]
    regs += [] if dialect == "fi" else ["1-0:2.8.2"]
    acc = {r: num(prev[r]) * WH for r in regs}
    for dt in steps_ms:
        m.step(dt / 1000)
        now = values(m.telegram())
        for r in regs:
            if dialect == "fi":
                acc[r] += num(prev[FI_POWER[r]]) * dt
            elif r[-1] == str(int(prev["0-0:96.14.0"])):  # tariff register of the tariff shown
                acc[r] += num(prev[f"1-0:{r[4]}.7.0"]) * dt
            assert num(now[r]) == acc[r] // WH, (r, dt)
        prev = now
    return len(steps_ms)


@pytest.mark.parametrize("dialect", ["fi", "dsmr5"])
def test_counters_grow_by_exactly_the_integrated_power(dialect: str) -> None:
    assert check_integration(dialect, 11, [10_000] * 1500) == 1500  # > 4 h from noon
    assert check_integration(dialect, 12, [100, 1, 0, 999, 3_600_000, 7] * 50)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    dialect=st.sampled_from(["fi", "dsmr5"]),
    steps=st.lists(st.integers(0, 600_000), max_size=40),
)
def test_integration_holds_for_any_steps(seed: int, dialect: str, steps: list[int]) -> None:
    check_integration(dialect, seed, steps)


def test_phases_sum_to_totals_and_are_physically_consistent() -> None:
    m = Meter(seed=2, start=START)
    seen = collections.Counter()
    for _ in range(720):  # two hours
        v = values(m.telegram())
        for total, (a, b, c) in {
            "1": ("21", "41", "61"),
            "2": ("22", "42", "62"),
            "3": ("23", "43", "63"),
            "4": ("24", "44", "64"),
        }.items():
            parts = [num(v[f"1-0:{k}.7.0"]) for k in (a, b, c)]
            assert num(v[f"1-0:{total}.7.0"]) == sum(parts)
        for p_imp, p_exp, q_imp, q_exp, u, i in simulate.PHASE_KEYS:
            p = [num(v[f"1-0:{k}.7.0"]) for k in (p_imp, p_exp, q_imp, q_exp)]
            assert p[0] * p[1] == 0 and p[2] * p[3] == 0  # one direction at a time
            seen["import"] += p[0] > 0
            seen["export"] += p[1] > 0
            u_dv, i_da = num(v[f"1-0:{u}.7.0"]), num(v[f"1-0:{i}.7.0"])
            assert 2200 <= u_dv <= 2450
            va = math.isqrt((p[0] + p[1]) ** 2 + (p[2] + p[3]) ** 2)
            assert abs(u_dv * i_da - 100 * va) <= 5 * u_dv + 200  # I has 0.1 A resolution
        m.step(10)
    assert seen["import"] > 50 and seen["export"] > 50


def test_dsmr5_gas_is_latched_every_five_minutes_and_grows() -> None:
    m = Meter(seed=4, start="2024-01-10T06:02:00Z", dialect="dsmr5")
    readings = []
    for _ in range(360):
        ts, gas = lines(m.telegram())[-1][1]
        assert ts[8:10] in {f"{k:02d}" for k in range(0, 60, 5)} and ts[10:12] == "00"
        readings.append(num(gas))
        m.step(10)
    assert readings == sorted(readings) and readings[-1] > readings[0]


# --- time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, dialect, before, after",
    [
        ("2024-03-31T00:59:50Z", "fi", "240331025950W", "240331040000S"),
        ("2024-10-27T00:59:50Z", "fi", "241027035950S", "241027030000W"),
        ("2024-03-31T00:59:50Z", "dsmr5", "240331015950W", "240331030000S"),
        ("2025-10-26T00:59:50Z", "dsmr5", "251026025950S", "251026020000W"),
        ("2025-03-30T00:59:50+00:00", "fi", "250330025950W", "250330040000S"),
    ],
)
def test_w_s_switches_at_the_eu_dst_boundaries(start: str, dialect: str, before: str, after: str) -> None:
    m = Meter(start=start, dialect=dialect)
    assert values(m.telegram())["0-0:1.0.0"] == before
    m.step(10)
    assert values(m.telegram())["0-0:1.0.0"] == after


def test_standard_offset_is_configurable() -> None:
    m = Meter(start="2024-01-01T00:00:00Z", std_offset_min=-300)
    assert m.expected() == {} and values(m.telegram())["0-0:1.0.0"] == "231231190000W"


# --- noise ---------------------------------------------------------------------------


def test_noise_mix_and_clean_flags() -> None:
    m = Meter(seed=5, start=START, noise=0.5)
    quiet = Meter(seed=5, start=START)
    kinds: collections.Counter[str | None] = collections.Counter()
    clean_expected = []
    after_cut = False
    for _ in range(800):
        data, clean = m.emit()
        quiet_tg = quiet.telegram()
        assert m.expected() == quiet.expected()  # noise never changes the meter
        assert clean == reference_clean(data), m.last_noise
        if after_cut:
            assert m.last_noise is None and data.startswith(b"/")
        after_cut = m.last_noise == "truncated"
        kinds[m.last_noise] += 1
        if m.last_noise == "oversized":
            assert len(data) > 3072 and crc_ok(data)
        if m.last_noise == "bad_crc":
            assert len(data) == len(quiet_tg) and not crc_ok(data)
        if m.last_noise in (None, "garbage"):
            assert data.endswith(quiet_tg)
        if clean:
            clean_expected.append(m.expected())
        m.step(10)
        quiet.step(10)
    noisy = 800 - kinds[None]
    assert 320 <= noisy <= 420  # rate 0.5, minus the telegram left intact after each cut
    for kind in simulate.NOISE_KINDS:
        assert 0.18 * noisy <= kinds[kind] <= 0.32 * noisy, kinds
    assert list(m.history) == clean_expected
    assert len(clean_expected) == kinds[None] + kinds["garbage"]


def test_noise_is_deterministic_and_off_by_default() -> None:
    def run(seed: int, noise: float) -> list[bytes]:
        m = Meter(seed=seed, start=START, noise=noise)
        out = []
        for _ in range(100):
            out.append(m.emit()[0])
            m.step(1)
        return out

    assert run(9, 0.3) == run(9, 0.3)
    assert run(9, 0.3) != run(10, 0.3)
    assert all(reference_clean(tg) for tg in run(9, 0.0))


# --- CLI -------------------------------------------------------------------------------


def meter_stream(n: int, seed: int, start: str, dialect: str = "fi", step: float = 10) -> bytes:
    m, out = Meter(seed=seed, start=start, dialect=dialect), b""
    for _ in range(n):
        out += m.telegram()
        m.step(step)
    return out


def test_cli_stdout_three_telegrams() -> None:
    args = ["--count", "3", "--interval", "0", "--seed", "7", "--start", START]
    res = subprocess.run([sys.executable, str(SIM), *args], capture_output=True, timeout=10)
    assert res.returncode == 0, res.stderr
    tgs = FRAME.findall(res.stdout)
    assert len(tgs) == 3 and b"".join(tgs) == res.stdout
    assert all(crc_ok(t) for t in tgs)
    assert res.stdout == meter_stream(3, 7, START)


def test_cli_in_process_to_file_with_bursts(tmp_path: Path) -> None:
    out = tmp_path / "t.bin"
    base = [*"--count 4 --interval 0 --step 1 --dialect dsmr5 --start".split(), START]
    assert simulate.main([*base, "--bursts", "--out", str(out)]) == 0
    assert out.read_bytes() == meter_stream(4, 0, START, "dsmr5", step=1)


def test_cli_log_holds_what_each_clean_telegram_says(tmp_path: Path) -> None:
    """--log (make soak checks the firmware against it): one JSON line per clean
    telegram, the values of exactly the telegrams that are clean, none for noise."""
    import json

    out, log = tmp_path / "t.bin", tmp_path / "expected.jsonl"
    args = [*"--count 60 --interval 0 --step 1 --noise 0.4 --seed 3 --bursts --burst-pause 0 --start".split(), START]
    assert simulate.main([*args, "--out", str(out), "--log", str(log)]) == 0
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    clean = [t for t in FRAME.findall(out.read_bytes()) if crc_ok(t) and len(t) <= simulate.MAX_TELEGRAM]
    assert 10 < len(logged) < 60
    assert logged == [{o: simulate.normalize(v) for o, v in values(t).items()} for t in clean]


def test_burst_split_keeps_the_bytes() -> None:
    rng = simulate.random.Random(1)
    tg = meter_stream(1, 0, START)
    for _ in range(50):
        parts = simulate.split_bursts(tg, rng)
        assert 3 <= len(parts) <= 5 and all(parts) and b"".join(parts) == tg


def test_cli_refuses_non_loopback_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    for addr in ("0.0.0.0:2323", "192.168.1.10:2323", "example.com:1", "nonsense"):
        assert simulate.main(["--tcp", addr, "--count", "1"]) == 2
        assert "--tcp" in capsys.readouterr().err
    assert simulate.parse_tcp("[::1]:80") == ("::1", 80)
    assert simulate.parse_tcp("localhost:0") == ("127.0.0.1", 0)


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The CLI in a subprocess and the first line it writes to stderr."""
    p = subprocess.Popen([sys.executable, str(SIM), *args], stderr=subprocess.PIPE)
    assert p.stderr is not None
    try:
        yield p, p.stderr.readline().decode()
    finally:
        p.kill()
        p.wait()
        p.stderr.close()


def test_cli_tcp_serves_two_clients_the_same_bytes() -> None:
    args = "--tcp 127.0.0.1:0 --wait-clients 2 --count 3 --interval 0.05 --seed 2 --start"
    with simulator(*args.split(), START) as (p, line):
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, line
        clients = [socket.create_connection(("127.0.0.1", int(m[1])), timeout=5) for _ in "ab"]
        got = []
        for c in clients:
            buf = b""
            while chunk := c.recv(65536):
                buf += chunk
            c.close()
            got.append(buf)
        assert p.wait(timeout=5) == 0
    assert got[0] == got[1] == meter_stream(3, 2, START, step=0.05)


def test_cli_pty_and_sigterm() -> None:
    with simulator("--pty", "--interval", "0.05", "--bursts", "--start", START) as (p, line):
        m = re.fullmatch(r"pty (/dev/\S+)\n", line)
        assert m, line
        fd = os.open(m[1], os.O_RDONLY | os.O_NOCTTY)
        buf, deadline = b"", time.monotonic() + 5
        while len(FRAME.findall(buf)) < 3 and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                buf += os.read(fd, 4096)
        os.close(fd)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=5) == 0
    tgs = FRAME.findall(buf)
    assert len(tgs) >= 3 and all(crc_ok(t) for t in tgs)


def test_cli_replay_reproduces_recorded_bytes(tmp_path: Path) -> None:
    a, b = TELEGRAMS / "se-lg-e360-01.txt", TELEGRAMS / "nl-dsmr5-iskra-01.txt"
    out = tmp_path / "r.bin"
    once = ["--replay", str(a), "--count", "1", "--interval", "0", "--out", str(out)]
    assert simulate.main(once) == 0
    assert out.read_bytes() == a.read_bytes()
    both = tmp_path / "both.txt"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    res = subprocess.run(
        [
            sys.executable,
            str(SIM),
            "--replay",
            str(both),
            str(a),
            *"--count 6 --interval 0".split(),
        ],
        capture_output=True,
        timeout=10,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == (a.read_bytes() + b.read_bytes() + a.read_bytes()) * 2
