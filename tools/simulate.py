#!/usr/bin/env python3
"""Meter simulator: P1/HAN telegrams of a simulated 3-phase home.

Strategy
- `Meter` is a deterministic model (one `random.Random(seed)` for the house,
  separate seeded generators for noise and bursts). Every value is an integer:
  clock in ms (UTC epoch), power in W / var, voltage in dV, current in mA,
  energy accumulators in W*ms / var*ms, gas in (l/h)*ms. Telegram text is
  made from those integers with integer formatting only: no floats reach a
  written value.
- Energy rule (zero-order hold): `step(s)` first integrates the power of the
  telegram now showing over the step, ``acc += P_written[W] * round(s*1000)[ms]``
  (per register: import, export, reactive import, reactive export, and for
  DSMR the tariff register of the tariff now showing), then advances the
  clock, then draws new instantaneous values. A counter prints
  ``acc // 3_600_000`` Wh (= kWh with 3 decimals, truncated). Accumulators
  start at whole Wh, so from the written telegrams alone a consumer can
  recompute every counter exactly.
- Per phase: net power = load - solar (solar split evenly over the phases,
  a daylight parabola 06:00-20:00 local times a cloud factor); import =
  max(net, 0), export = max(-net, 0); reactive likewise from |P| and a power
  factor; current = sqrt(P^2 + Q^2) / U. Totals are the sums of the phases.
- Timestamps `YYMMDDhhmmssX`: X = S from the last Sunday of March 01:00 UTC to
  the last Sunday of October 01:00 UTC (EU rule), local = UTC + standard
  offset (+60 min in S).
- Noise (`Noise`): with probability `rate` per telegram one of `NOISE_KINDS`,
  chosen uniformly. `emit()` returns ``(bytes, clean)``: clean means the bytes
  hold exactly one complete telegram with a valid CRC within 3072 bytes whose
  values are `expected()`; only clean telegrams enter `Meter.history`.
"""

from __future__ import annotations

import argparse
import calendar
import collections
import ipaddress
import json
import math
import os
import random
import re
import select
import signal
import socket
import sys
import time
import tty
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "firmware") not in sys.path:
    sys.path.insert(0, str(ROOT / "firmware"))

from p1.crc import crc16  # noqa: E402

MS_PER_HOUR = 3_600_000
GAS_PERIOD_MS = 300_000  # DSMR 5 gas meters report every 5 minutes
MAX_TELEGRAM = 3072  # the reader's frame buffer: bigger telegrams are "oversized"
DEFAULT_START = "2024-01-15T12:00:00+00:00"
STD_OFFSET_MIN = {"fi": 120, "dsmr5": 60}
DIALECTS = tuple(STD_OFFSET_MIN)
NOISE_KINDS = ("bad_crc", "garbage", "truncated", "oversized")
BURST_PAUSE_S = 0.02
PHASE_KEYS = (  # per phase: P+, P-, Q+, Q-, U, I
    ("21", "22", "23", "24", "32", "31"),
    ("41", "42", "43", "44", "52", "51"),
    ("61", "62", "63", "64", "72", "71"),
)

Line = tuple[str, list[str]]  # OBIS, value groups as written (without parentheses)


# --- time ---------------------------------------------------------------------


def _last_sunday_1utc(year: int, month: int) -> int:
    """Epoch seconds of the last Sunday of the month, 01:00 UTC."""
    last = calendar.monthrange(year, month)[1]
    back = (calendar.weekday(year, month, last) - 6) % 7
    return calendar.timegm((year, month, last - back, 1, 0, 0))


def is_dst(epoch_s: int) -> bool:
    """EU summer time: last Sunday of March 01:00 UTC .. last Sunday of October 01:00 UTC."""
    year = time.gmtime(epoch_s).tm_year
    return _last_sunday_1utc(year, 3) <= epoch_s < _last_sunday_1utc(year, 10)


def local_time(epoch_s: int, std_offset_min: int) -> tuple[time.struct_time, str]:
    """Local wall time and its W/S flag."""
    dst = is_dst(epoch_s)
    return time.gmtime(epoch_s + 60 * (std_offset_min + 60 * dst)), "S" if dst else "W"


def stamp(epoch_s: int, std_offset_min: int) -> str:
    """`YYMMDDhhmmssX` as meters write it."""
    t, flag = local_time(epoch_s, std_offset_min)
    return time.strftime("%y%m%d%H%M%S", t) + flag


def parse_start(text: str) -> int:
    """ISO 8601 -> epoch ms; a time without offset is UTC."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


def parse_offset(text: str) -> int:
    """`+02:00` / `-0130` -> minutes."""
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", text)
    if not m:
        raise ValueError(f"bad offset {text!r}, want +HH:MM")
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return -minutes if m.group(1) == "-" else minutes


# --- formatting ---------------------------------------------------------------


def fixed(value: int, int_digits: int, decimals: int) -> str:
    """Non-negative fixed point: value in units of 10**-decimals, zero padded."""
    if decimals == 0:
        return f"{value:0{int_digits}d}"
    whole, frac = divmod(value, 10**decimals)
    return f"{whole:0{int_digits}d}.{frac:0{decimals}d}"


def normalize(group: str) -> str:
    """A value group as `expected()` gives it: numbers with a unit lose leading zeros."""
    if "*" not in group:
        return group
    number = group.split("*", 1)[0]
    whole, dot, frac = number.partition(".")
    return (whole.lstrip("0") or "0") + dot + frac


def frame(ident: str, lines: list[Line]) -> bytes:
    """Whole telegram with CRC-16/ARC over `/` .. `!`."""
    body = "".join(f"{obis}{''.join(f'({g})' for g in groups)}\r\n" for obis, groups in lines)
    data = f"/{ident}\r\n\r\n{body}!".encode("ascii")
    return data + b"%04X\r\n" % crc16(data)


def _hex(text: str) -> str:
    return text.encode("ascii").hex().upper()


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(v, hi))


# --- noise and bursts ---------------------------------------------------------


def corrupt_digit(tg: bytes, rng: random.Random) -> bytes:
    """One data digit changed, the old CRC kept."""
    start, end = tg.find(b"\r\n\r\n") + 4, tg.rfind(b"!")
    digits = [i for i in range(start, end) if 0x30 <= tg[i] <= 0x39]
    if not digits:
        return tg[:end] + b"?" + tg[end + 1 :]
    i = rng.choice(digits)
    new = rng.choice([d for d in b"0123456789" if d != tg[i]])
    return tg[:i] + bytes([new]) + tg[i + 1 :]


def garbage(rng: random.Random) -> bytes:
    """Line noise between telegrams: 1..64 random bytes, never `/`."""
    return bytes(
        rng.choice([b for b in range(256) if b != 0x2F]) for _ in range(rng.randint(1, 64))
    )


def truncate(tg: bytes, rng: random.Random) -> bytes:
    """The first part of a telegram, cut somewhere before `!`."""
    return tg[: rng.randint(len(tg) // 4, min(3 * len(tg) // 4, tg.rfind(b"!")))]


def oversize(tg: bytes, rng: random.Random) -> bytes:
    """The telegram padded with text-message lines past MAX_TELEGRAM, CRC valid."""
    bang = tg.rfind(b"!")
    target = MAX_TELEGRAM + rng.randint(1, 1024)
    pad = bytearray()
    while bang + len(pad) + 7 <= target:
        pad += b"0-0:96.13.0(" + _hex("overlong text message " * 23)[:1000].encode() + b")\r\n"
    data = tg[:bang] + bytes(pad) + b"!"
    if re.fullmatch(rb"[0-9A-Fa-f]{4}\r\n", tg[bang + 1 :]):
        return data + b"%04X\r\n" % crc16(data)
    return data + tg[bang + 1 :]


class Noise:
    """Per telegram, with probability `rate`, one of NOISE_KINDS (uniform).

    After a truncated telegram the next one is always left intact, so the cut
    telegram is followed directly by a whole one. Garbage is put before an
    intact telegram, which therefore still counts as clean.
    """

    def __init__(self, rate: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("noise rate must be within 0..1")
        self.rate = rate
        self._rng = random.Random(f"noise-{seed}")
        self._after_cut = False

    def apply(self, tg: bytes) -> tuple[bytes, bool, str | None]:
        """-> (bytes to send, clean, noise kind or None)."""
        if self._after_cut or self.rate == 0.0 or self._rng.random() >= self.rate:
            self._after_cut = False
            return tg, True, None
        kind = self._rng.choice(NOISE_KINDS)
        if kind == "garbage":
            return garbage(self._rng) + tg, True, kind
        self._after_cut = kind == "truncated"
        make = {"bad_crc": corrupt_digit, "truncated": truncate, "oversized": oversize}[kind]
        return make(tg, self._rng), False, kind


def split_bursts(data: bytes, rng: random.Random) -> list[bytes]:
    """3..5 consecutive pieces of `data` (as an E360 writes a telegram)."""
    n = rng.randint(3, 5)
    if len(data) < n:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), n - 1))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def split_telegrams(data: bytes) -> list[bytes]:
    """A recorded byte stream cut before every `/` that starts a line."""
    starts = [m.start() for m in re.finditer(rb"(?:^|(?<=\n))/", data)]
    if not starts:
        return [data] if data else []
    starts[0] = 0
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)])]


# --- the meter ----------------------------------------------------------------


class Meter:
    """A deterministic 3-phase home behind a P1/HAN port.

    Meter(seed=0, start=DEFAULT_START, dialect="fi", std_offset_min=None, noise=0.0)
      start: ISO 8601 str (no offset = UTC), datetime, or epoch ms int.
      std_offset_min: standard-time offset for timestamps; None = the dialect's
        (fi +120, dsmr5 +60).
    telegram(dialect=None) -> bytes   render the current state (sets expected())
    emit() -> (bytes, clean)          telegram() plus noise; clean ones go to history
    step(seconds)                     integrate, advance the clock, new values
    expected() -> dict                OBIS -> value string of the last telegram()
    """

    HISTORY = 10_000  # clean expected() dicts kept

    def __init__(
        self,
        seed: int = 0,
        start: str | datetime | int = DEFAULT_START,
        dialect: str = "fi",
        std_offset_min: int | None = None,
        noise: float = 0.0,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}")
        self.dialect = dialect
        self.std_offset_min = std_offset_min
        self.clock_ms = self._start_ms(start)
        self.noise = Noise(noise, seed)
        self.last_noise: str | None = None
        self.history: collections.deque[dict[str, str]] = collections.deque(maxlen=self.HISTORY)
        self._rng = random.Random(seed)
        self._init_counters()
        self._init_house()
        self._expected: dict[str, str] = {}
        self._evolve()

    @staticmethod
    def _start_ms(start: str | datetime | int) -> int:
        if isinstance(start, int):
            return start
        return parse_start(start if isinstance(start, str) else start.isoformat())

    def _init_counters(self) -> None:
        r = self._rng
        wh = MS_PER_HOUR
        t1, t2 = r.randint(100_000, 9_000_000), r.randint(100_000, 9_000_000)
        e1, e2 = r.randint(0, 2_000_000), r.randint(0, 2_000_000)
        self.acc = {  # W*ms or var*ms, whole Wh at the start
            "1.8.0": (t1 + t2) * wh,
            "2.8.0": (e1 + e2) * wh,
            "3.8.0": r.randint(0, 3_000_000) * wh,
            "4.8.0": r.randint(0, 1_000_000) * wh,
            "1.8.1": t1 * wh,
            "1.8.2": t2 * wh,
            "2.8.1": e1 * wh,
            "2.8.2": e2 * wh,
        }
        self.gas_acc = r.randint(0, 20_000_000) * MS_PER_HOUR  # (l/h)*ms
        self._gas_report = (
            self.clock_ms // GAS_PERIOD_MS * GAS_PERIOD_MS,
            self.gas_acc // MS_PER_HOUR,
        )
        self._serial = f"{r.randrange(10**9):09d}"

    def _init_house(self) -> None:
        r = self._rng
        self.base_w = [r.randint(80, 600) for _ in range(3)]
        self.event_w = [0, 0, 0]
        self.event_ms = [0, 0, 0]
        self.pf = [r.randint(880, 990) for _ in range(3)]  # permille
        self.q_sign = [1, 1, -1]
        self.u_dv = [r.randint(2280, 2340) for _ in range(3)]
        self.solar_peak_w = r.randint(3000, 7500)
        self.cloud = r.randint(300, 1000)  # permille of clear sky
        self.gas_lph = 0
        self.p_w = [0, 0, 0]  # net active power per phase, + import
        self.q_var = [0, 0, 0]  # net reactive power per phase, + import
        self.i_ma = [0, 0, 0]

    # -- dynamics --

    def step(self, seconds: float) -> None:
        """Advance `seconds` (ms resolution): integrate, move the clock, draw new values."""
        dt = round(seconds * 1000)
        if dt < 0:
            raise ValueError("time runs forward only")
        self._integrate(dt)
        self._advance_gas(dt)
        for i in range(3):
            self.event_ms[i] = max(0, self.event_ms[i] - dt)
        self._evolve()

    def _integrate(self, dt: int) -> None:
        imp, exp, qimp, qexp = self.totals()
        tariff = self.tariff()
        for reg, power in (("1.8.0", imp), ("2.8.0", exp), ("3.8.0", qimp), ("4.8.0", qexp)):
            self.acc[reg] += power * dt
        self.acc[f"1.8.{tariff}"] += imp * dt
        self.acc[f"2.8.{tariff}"] += exp * dt

    def _advance_gas(self, dt: int) -> None:
        """Gas flows at `gas_lph`; the reading is latched at every 5-minute boundary."""
        t, end = self.clock_ms, self.clock_ms + dt
        while t < end:
            boundary = (t // GAS_PERIOD_MS + 1) * GAS_PERIOD_MS
            seg = min(end, boundary) - t
            self.gas_acc += self.gas_lph * seg
            t += seg
            if t == boundary:
                self._gas_report = (t, self.gas_acc // MS_PER_HOUR)
        self.clock_ms = end

    def _evolve(self) -> None:
        r = self._rng
        solar = self._solar_w() // 3
        for i in range(3):
            self.base_w[i] = _clamp(self.base_w[i] + r.randint(-40, 40), 40, 1500)
            if self.event_ms[i] == 0 and r.randrange(100) < 3:  # kettle, oven, sauna...
                self.event_w[i] = r.randint(500, 3000)
                self.event_ms[i] = r.randint(30, 900) * 1000
            load = self.base_w[i] + (self.event_w[i] if self.event_ms[i] else 0)
            self.pf[i] = _clamp(self.pf[i] + r.randint(-10, 10), 800, 995)
            if r.randrange(100) < 3:
                self.q_sign[i] = -self.q_sign[i]
            self.u_dv[i] = _clamp(self.u_dv[i] + r.randint(-6, 6), 2250, 2420)
            self._set_phase(i, load - solar)
        self.cloud = _clamp(self.cloud + r.randint(-60, 60), 100, 1000)
        self.gas_lph = r.choice((0, 0, 0, r.randint(100, 1800)))

    def _set_phase(self, i: int, net_w: int) -> None:
        pf = self.pf[i]
        self.p_w[i] = net_w
        self.q_var[i] = self.q_sign[i] * (abs(net_w) * math.isqrt(1_000_000 - pf * pf) // pf)
        va = math.isqrt(net_w * net_w + self.q_var[i] * self.q_var[i])
        self.i_ma[i] = (va * 10_000 + self.u_dv[i] // 2) // self.u_dv[i]

    def _solar_w(self) -> int:
        t, _ = local_time(self.clock_ms // 1000, self._offset(self.dialect))
        x, span = t.tm_hour * 60 + t.tm_min - 360, 840  # 06:00 .. 20:00
        if not 0 < x < span:
            return 0
        return (
            self.solar_peak_w
            * (4 * x * (span - x) * 1000 // (span * span))
            * self.cloud
            // 1_000_000
        )

    # -- derived values --

    def phase(self, i: int) -> tuple[int, int, int, int]:
        """(P+ W, P- W, Q+ var, Q- var) of phase i: never both directions at once."""
        p, q = self.p_w[i], self.q_var[i]
        return max(p, 0), max(-p, 0), max(q, 0), max(-q, 0)

    def totals(self) -> tuple[int, int, int, int]:
        """Sums over the phases of `phase(i)`."""
        rows = [self.phase(i) for i in range(3)]
        return tuple(sum(col) for col in zip(*rows))  # type: ignore[return-value]

    def tariff(self) -> int:
        """DSMR tariff: 1 (low) 23:00-07:00 local and weekends, else 2."""
        t, _ = local_time(self.clock_ms // 1000, self._offset("dsmr5"))
        return 1 if t.tm_wday >= 5 or t.tm_hour >= 23 or t.tm_hour < 7 else 2

    def counter_wh(self, reg: str) -> int:
        """Printed value of an energy register (`1.8.0`, `2.8.1`, ...) in Wh / varh."""
        return self.acc[reg] // MS_PER_HOUR

    def _offset(self, dialect: str) -> int:
        return STD_OFFSET_MIN[dialect] if self.std_offset_min is None else self.std_offset_min

    # -- telegrams --

    def telegram(self, dialect: str | None = None) -> bytes:
        """The current state as a telegram; `expected()` then describes it."""
        dialect = dialect or self.dialect
        if dialect == "fi":
            ident, lines = "LGF5E360", self._lines_fi()
        elif dialect == "dsmr5":
            ident, lines = "ISk5\\2MT382-1000", self._lines_dsmr5()
        else:
            raise ValueError(f"dialect must be one of {DIALECTS}")
        self._expected = {obis: normalize(groups[-1]) for obis, groups in lines}
        return frame(ident, lines)

    def emit(self) -> tuple[bytes, bool]:
        """telegram() with noise applied; a clean one is added to `history`."""
        data, clean, self.last_noise = self.noise.apply(self.telegram())
        if clean:
            self.history.append(self.expected())
        return data, clean

    def expected(self) -> dict[str, str]:
        """OBIS -> last value group of the last telegram(); numbers with a unit
        without leading zeros (`"896.020"`, `"0.6"`), others as written."""
        return dict(self._expected)

    def _lines_fi(self) -> list[Line]:
        imp, exp, qimp, qexp = self.totals()
        lines: list[Line] = [("0-0:1.0.0", [stamp(self.clock_ms // 1000, self._offset("fi"))])]
        for reg, unit in (
            ("1.8.0", "kWh"),
            ("2.8.0", "kWh"),
            ("3.8.0", "kVArh"),
            ("4.8.0", "kVArh"),
        ):
            lines.append((f"1-0:{reg}", [f"{fixed(self.counter_wh(reg), 8, 3)}*{unit}"]))
        for c, v, unit in (
            ("1", imp, "kW"),
            ("2", exp, "kW"),
            ("3", qimp, "kVAr"),
            ("4", qexp, "kVAr"),
        ):
            lines.append((f"1-0:{c}.7.0", [f"{fixed(v, 4, 3)}*{unit}"]))
        for cols, unit in (((0, 1), "kW"), ((2, 3), "kVAr")):  # E360 order: 21, 22, 41, 42, ...
            for i in range(3):
                values = self.phase(i)
                lines += [
                    (f"1-0:{PHASE_KEYS[i][c]}.7.0", [f"{fixed(values[c], 4, 3)}*{unit}"])
                    for c in cols
                ]
        lines += [
            (f"1-0:{PHASE_KEYS[i][4]}.7.0", [f"{fixed(self.u_dv[i], 3, 1)}*V"]) for i in range(3)
        ]
        lines += [
            (f"1-0:{PHASE_KEYS[i][5]}.7.0", [f"{fixed((self.i_ma[i] + 50) // 100, 3, 1)}*A"])
            for i in range(3)
        ]
        return lines

    def _lines_dsmr5(self) -> list[Line]:
        off = self._offset("dsmr5")
        imp, exp, _, _ = self.totals()
        gas_t, gas_l = self._gas_report
        lines: list[Line] = [
            ("1-3:0.2.8", ["50"]),
            ("0-0:1.0.0", [stamp(self.clock_ms // 1000, off)]),
            ("0-0:96.1.1", [_hex(f"E004300{self._serial}")]),
        ]
        for reg in ("1.8.1", "1.8.2", "2.8.1", "2.8.2"):
            lines.append((f"1-0:{reg}", [f"{fixed(self.counter_wh(reg), 6, 3)}*kWh"]))
        lines += [
            ("0-0:96.14.0", [f"{self.tariff():04d}"]),
            ("1-0:1.7.0", [f"{fixed(imp, 2, 3)}*kW"]),
            ("1-0:2.7.0", [f"{fixed(exp, 2, 3)}*kW"]),
            ("0-0:96.7.21", ["00004"]),
            ("0-0:96.7.9", ["00002"]),
            ("1-0:99.97.0", ["1", "0-0:96.7.19", stamp(1_700_000_000, off), "0000000240*s"]),
        ]
        lines += [(f"1-0:{ph}.32.0", ["00000"]) for ph in ("32", "52", "72")]
        lines += [(f"1-0:{ph}.36.0", ["00000"]) for ph in ("32", "52", "72")]
        lines.append(("0-0:96.13.0", [""]))
        lines += [
            (f"1-0:{PHASE_KEYS[i][4]}.7.0", [f"{fixed(self.u_dv[i], 4, 1)}*V"]) for i in range(3)
        ]
        lines += [
            (f"1-0:{PHASE_KEYS[i][5]}.7.0", [f"{fixed((self.i_ma[i] + 5) // 10, 1, 2)}*A"])
            for i in range(3)
        ]
        for col in (0, 1):
            lines += [
                (f"1-0:{PHASE_KEYS[i][col]}.7.0", [f"{fixed(self.phase(i)[col], 2, 3)}*kW"])
                for i in range(3)
            ]
        lines += [
            ("0-1:24.1.0", ["003"]),
            ("0-1:96.1.0", [_hex(f"G0012345{self._serial}")]),
            ("0-1:24.2.1", [stamp(gas_t // 1000, off), f"{fixed(gas_l, 5, 3)}*m3"]),
        ]
        return lines


class Replayer:
    """Recorded telegram files, telegram by telegram, in a loop (same emit/step API)."""

    def __init__(self, paths: list[str], noise: float = 0.0, seed: int = 0) -> None:
        self.telegrams = [tg for p in paths for tg in split_telegrams(Path(p).read_bytes())]
        if not self.telegrams:
            raise ValueError("nothing to replay")
        self.noise = Noise(noise, seed)
        self.last_noise: str | None = None
        self._next = 0

    def emit(self) -> tuple[bytes, bool]:
        tg = self.telegrams[self._next]
        self._next = (self._next + 1) % len(self.telegrams)
        data, clean, self.last_noise = self.noise.apply(tg)
        return data, clean

    def step(self, seconds: float) -> None:
        pass


# --- outputs ------------------------------------------------------------------


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class StreamSink:
    """stdout or a file: write and flush."""

    def __init__(self, stream: BinaryIO, owned: bool = False) -> None:
        self.stream, self.owned = stream, owned

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()

    def close(self) -> None:
        if self.owned:
            self.stream.close()


class TcpSink:
    """Listen on a loopback address and send every byte to each connected client."""

    SEND_TIMEOUT_S = 2.0

    def __init__(self, host: str, port: int, wait_clients: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = socket.socket(family, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(8)
        self.clients: list[socket.socket] = []
        bound = self.server.getsockname()
        print(f"listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
        while len(self.clients) < wait_clients:
            self._accept()
        self.server.setblocking(False)

    def _accept(self) -> None:
        conn, _ = self.server.accept()
        conn.settimeout(self.SEND_TIMEOUT_S)
        self.clients.append(conn)

    def _accept_pending(self) -> None:
        while select.select([self.server], [], [], 0)[0]:
            try:
                self._accept()
            except BlockingIOError:
                return

    def write(self, data: bytes) -> None:
        self._accept_pending()
        for conn in list(self.clients):
            try:
                conn.sendall(data)
            except OSError:  # gone or too slow: drop it
                self.clients.remove(conn)
                conn.close()

    def close(self) -> None:
        for conn in self.clients:
            conn.close()
        self.server.close()


class PtySink:
    """A pseudo-terminal in raw mode; bytes nobody reads are dropped, as on a wire."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.dropped = 0
        print(f"pty {os.ttyname(self.slave)}", file=sys.stderr, flush=True)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:
                self.dropped += len(view)
                return

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


# --- CLI ----------------------------------------------------------------------


class Source(Protocol):
    def emit(self) -> tuple[bytes, bool]: ...
    def step(self, seconds: float) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simulate", description="P1/HAN meter simulator.")
    p.add_argument(
        "--interval", type=float, default=10.0, help="real seconds between telegrams (default 10)"
    )
    p.add_argument(
        "--step", type=float, help="simulated seconds per telegram (default: the interval, 10 if 0)"
    )
    p.add_argument("--count", type=int, default=0, help="telegrams to send, 0 = forever")
    p.add_argument("--dialect", choices=DIALECTS, default="fi")
    p.add_argument("--noise", type=float, default=0.0, help="probability of a noisy telegram, 0..1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", help="simulated start time, ISO 8601 (no offset = UTC; default now)")
    p.add_argument("--tz", help="standard-time offset +HH:MM (default fi +02:00, dsmr5 +01:00)")
    p.add_argument(
        "--bursts", action="store_true", help="write each telegram in 3-5 pieces, 20 ms apart"
    )
    p.add_argument(
        "--burst-pause", type=float, default=BURST_PAUSE_S, help="--bursts: seconds between pieces"
    )
    p.add_argument(
        "--log", metavar="FILE",
        help="JSON lines: each clean telegram's expected() values as written (OBIS -> text)",
    )
    p.add_argument(
        "--replay", nargs="+", metavar="FILE", help="replay recorded telegram files in a loop"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", metavar="FILE", help="write to a file")
    out.add_argument("--tcp", metavar="HOST:PORT", help="serve clients on a loopback address")
    out.add_argument("--pty", action="store_true", help="write to a pseudo-terminal")
    p.add_argument(
        "--wait-clients", type=int, default=0, help="with --tcp: wait for N clients first"
    )
    return p


def parse_tcp(text: str) -> tuple[str, int]:
    """`127.0.0.1:PORT`, `[::1]:PORT` or `localhost:PORT`; loopback only."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--tcp wants HOST:PORT, got {text!r}")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--tcp serves loopback addresses only (127.0.0.0/8, ::1), not {host!r}")
    return host, int(port)


def make_source(args: argparse.Namespace) -> Source:
    if args.replay:
        return Replayer(args.replay, noise=args.noise, seed=args.seed)
    start = parse_start(args.start) if args.start else int(time.time()) * 1000
    offset = parse_offset(args.tz) if args.tz else None
    return Meter(
        seed=args.seed, start=start, dialect=args.dialect, std_offset_min=offset, noise=args.noise
    )


def make_sink(args: argparse.Namespace) -> Sink:
    if args.tcp:
        host, port = parse_tcp(args.tcp)
        return TcpSink(host, port, args.wait_clients)
    if args.pty:
        return PtySink()
    if args.out:
        return StreamSink(open(args.out, "wb"), owned=True)
    return StreamSink(sys.stdout.buffer)


def run(
    source: Source,
    sink: Sink,
    interval: float,
    step_s: float,
    count: int,
    bursts: random.Random | None,
    log: BinaryIO | None = None,
    burst_pause: float = BURST_PAUSE_S,
) -> None:
    """Emit, write (in bursts), wait for the next tick, step; `count` 0 = forever.
    `log` gets a JSON line of `expected()` for each clean telegram, before it is written
    (a reader that checks values never sees a telegram its line is not yet there for)."""
    sent, deadline = 0, time.monotonic()
    parent = os.getppid()
    while True:
        if os.getppid() != parent:  # whoever started us is gone (killed): no orphan meter
            return
        data, clean = source.emit()
        if log is not None and clean:
            log.write(json.dumps(source.expected()).encode() + b"\n")  # type: ignore[attr-defined]
            log.flush()
        pieces = split_bursts(data, bursts) if bursts else [data]
        for k, piece in enumerate(pieces):
            if k:
                time.sleep(burst_pause)
            sink.write(piece)
        sent += 1
        if count and sent >= count:
            return
        deadline += interval
        time.sleep(max(0.0, deadline - time.monotonic()))
        source.step(step_s)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: signals are the caller's business
        pass
    sink: Sink | None = None
    log: BinaryIO | None = None
    try:
        source = make_source(args)
        step_s = args.step if args.step is not None else (args.interval or 10.0)
        bursts = random.Random(f"bursts-{args.seed}") if args.bursts else None
        _check_args(args)
        sink = make_sink(args)
        log = open(args.log, "wb") if args.log else None
        run(source, sink, args.interval, step_s, args.count, bursts, log, args.burst_pause)
    except (ValueError, OSError) as e:
        if isinstance(e, BrokenPipeError):  # reader went away: a normal end
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"simulate: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        if sink is not None:
            sink.close()
        if log is not None:
            log.close()
    return 0


def _check_args(args: argparse.Namespace) -> None:
    if args.interval < 0 or (args.step is not None and args.step < 0):
        raise ValueError("--interval and --step must be >= 0")
    if args.count < 0 or args.wait_clients < 0:
        raise ValueError("--count and --wait-clients must be >= 0")
    if args.log and args.replay:
        raise ValueError("--log needs the simulated meter, not --replay")
    if args.burst_pause < 0:
        raise ValueError("--burst-pause must be >= 0")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
