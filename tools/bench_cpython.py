#!/usr/bin/env python3
"""CPython speed against dsmr_parser, the baseline measured in the same run (`make bench`, 1).

- parser: our general decoder (Framer + p1.parse + p1.readings: bytes to
  named, exact readings) against dsmr_parser's TelegramBuffer + TelegramParser
  (the way its serial reader uses them), goal >= 5x;
- end to end: the decode tool (`p1tool.py decode` without the process start:
  p1.__main__'s stream loop, bytes in, JSON Lines out) against dsmr_parser
  TelegramBuffer + TelegramParser + the telegram's JSON by the faster of its
  own `Telegram.to_json()` and one `json.dumps` of its values (same content:
  checked equal), goal >= 5x.

All over the same in-memory stream of recorded telegrams, best of 3 runs,
the runs of all interleaved. Printed too: the host board's own pipeline
(meter.Pipeline: Framer + p1.body) against dsmr_parser's parsing.

    python3 tools/bench_cpython.py [-n 2000]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "firmware", ROOT / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
TG = ROOT / "host_tests" / "telegrams"
GOAL = 5.0

STREAMS = {
    # name: (recorded telegrams cycled, dsmr_parser spec name)
    "Finnish/Swedish (E360, Aidon, Sagemcom)": (
        ["se-lg-e360-01.txt", "se-lg-e360-02.txt", "xx-lg-e360-04.txt", "se-aidon-6534-01.txt",
         "se-sagemcom-ell5-01.txt"],
        "SWEDEN",
    ),
    "Dutch DSMR 5 (Iskra)": (["nl-dsmr5-iskra-01.txt", "nl-dsmr5-iskra-am550-02.txt"], "V5"),
}  # fmt: skip


def stream_of(files: list[str], n: int) -> bytes:
    tel = [(TG / f).read_bytes() for f in files]
    return b"".join(tel[i % len(tel)] for i in range(n))


# ---- ours ---------------------------------------------------------------------------


def ours_parse(stream: bytes) -> int:
    from p1.framer import Framer
    from p1.parse import parse
    from p1.readings import readings

    fr = Framer(3072)
    n = 0
    for i in range(0, len(stream), 4096):
        fr.feed(stream[i : i + 4096])
        while (f := fr.next_frame()) is not None:
            if fr.crc == "ok":
                readings(parse(f, "ok", 120))
                n += 1
    return n


def ours_decode(stream: bytes, out: list | None = None) -> int:
    """What `p1tool.py decode` does with a file, into a list instead of stdout."""
    from p1.__main__ import _decode_stream
    from p1.framer import Framer

    lines = [] if out is None else out
    _decode_stream(io.BytesIO(stream).read, Framer(3072), 120, lines.append)
    return len(lines)


# ---- dsmr_parser ----------------------------------------------------------------------


def _theirs(stream: bytes, spec_name: str, each) -> int:
    from dsmr_parser import telegram_specifications
    from dsmr_parser.clients.telegram_buffer import TelegramBuffer
    from dsmr_parser.parsers import TelegramParser

    parser = TelegramParser(getattr(telegram_specifications, spec_name))
    buf = TelegramBuffer()
    text = stream.decode("latin-1")
    n = 0
    for i in range(0, len(text), 4096):
        buf.append(text[i : i + 4096])
        for t in buf.get_all():
            each(parser.parse(t))
            n += 1
    return n


def theirs_parse(stream: bytes, spec_name: str) -> int:
    return _theirs(stream, spec_name, lambda t: None)


def theirs_to_json(stream: bytes, spec_name: str, out: list | None = None) -> int:
    each = (lambda t: t.to_json()) if out is None else (lambda t: out.append(t.to_json()))
    return _theirs(stream, spec_name, each)


def _jsonable():
    from datetime import datetime, timezone
    from decimal import Decimal

    from dsmr_parser.objects import CosemObject, MBusObject

    def default(o):  # what its to_json() writes for these
        if isinstance(o, Decimal):
            return float(o)
        if isinstance(o, datetime):
            return o.astimezone(timezone.utc).isoformat()
        raise TypeError(type(o).__name__)

    def plain(t) -> str:
        d = {}
        for attr, v in t:
            tp = type(v)
            if tp is CosemObject:
                d[attr] = {"value": v.value, "unit": v.unit}
            elif tp is MBusObject:
                d[attr] = {"datetime": v.datetime, "value": v.value, "unit": v.unit}
            elif isinstance(v, list):
                d[attr] = [json.loads(x.to_json()) if hasattr(x, "to_json") else x for x in v]
            elif hasattr(v, "to_json"):
                d[attr] = json.loads(v.to_json())
        return json.dumps(d, default=default)

    return plain


def theirs_dumps(stream: bytes, spec_name: str, out: list | None = None) -> int:
    plain = _jsonable()
    each = (lambda t: plain(t)) if out is None else (lambda t: out.append(plain(t)))
    return _theirs(stream, spec_name, each)


# ---- measuring ------------------------------------------------------------------------


def ours_pipeline(stream: bytes) -> int:
    """The host board's own path (meter.Pipeline: Framer + p1.body.Encoder + hub)."""
    from hub import Hub
    from meter import Pipeline

    p = Pipeline(Hub())
    for i in range(0, len(stream), 4096):
        p.feed(stream[i : i + 4096])
    return p.accepted


def interleaved(cases: dict, n: int, rounds: int = 3) -> dict[str, float]:
    """{label: best seconds} over `rounds` rounds of every case in turn (a busy moment
    of the machine hits all alike); each case must count n telegrams."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for label, (fn, *args) in cases.items():
            t0 = time.perf_counter()
            count = fn(*args)
            dt = time.perf_counter() - t0
            if count != n:
                raise RuntimeError(f"{label}: {count} telegrams of {n}")
            best[label] = min(best.get(label, dt), dt)
    return best


def dsmr_parser_version() -> str:
    try:
        from importlib.metadata import version

        return version("dsmr-parser")
    except Exception:  # noqa: BLE001
        return "?"


def run(n: int = 2000, log=print) -> list[dict]:
    """Figures: [{"figure", "value", "target", "ok", "detail"}]."""
    figs = []
    log(f"== 1. CPython {sys.version.split()[0]}: {n} telegrams per stream, best of 3 interleaved runs;"
        f" baseline dsmr_parser {dsmr_parser_version()}")  # fmt: skip
    for name, (files, spec) in STREAMS.items():
        stream = stream_of(files, n)
        short = name.split(" (")[0]
        # dsmr_parser's two routes to JSON give the same content (checked), the faster one counts
        one = stream_of(files, len(files))
        a: list = []
        b: list = []
        theirs_to_json(one, spec, a)
        theirs_dumps(one, spec, b)
        if [json.loads(x) for x in a] != [json.loads(x) for x in b]:
            raise RuntimeError("dsmr_parser: json.dumps of its values differs from its to_json()")
        t = interleaved({
            "parse": (ours_parse, stream), "their_parse": (theirs_parse, stream, spec),
            "decode": (ours_decode, stream), "their_to_json": (theirs_to_json, stream, spec),
            "their_dumps": (theirs_dumps, stream, spec), "pipeline": (ours_pipeline, stream),
        }, n)  # fmt: skip
        us = {k: v * 1e6 / n for k, v in t.items()}
        r_parse = t["their_parse"] / t["parse"]
        route, base = (
            ("json.dumps of its values", "their_dumps")
            if t["their_dumps"] <= t["their_to_json"]
            else ("Telegram.to_json()", "their_to_json")
        )
        r_e2e = t[base] / t["decode"]
        r_pipe = t["their_parse"] / t["pipeline"]
        log(f"   {name}\n     parser: ours (Framer + parse + readings) {us['parse']:6.1f} us/telegram,"
            f" dsmr_parser (TelegramBuffer + TelegramParser) {us['their_parse']:6.1f} -> {r_parse:.1f}x")  # fmt: skip
        log(f"     end to end (bytes -> JSON): decode tool {us['decode']:6.1f} us/telegram; dsmr_parser with"
            f" to_json() {us['their_to_json']:6.1f}, with json.dumps of its values {us['their_dumps']:6.1f}"
            f" (faster: {route}) -> {r_e2e:.1f}x")  # fmt: skip
        log(f"     the host board's pipeline (meter.Pipeline: Framer + p1.body, JSON body out) {us['pipeline']:6.1f}"
            f" us/telegram -> {r_pipe:.1f}x dsmr_parser's parsing alone")  # fmt: skip
        figs += [
            {"figure": f"CPython parser vs dsmr_parser, {short}", "value": f"{r_parse:.1f}x",
             "target": f">= {GOAL:.0f}x", "ok": r_parse >= GOAL},
            {"figure": f"CPython decode tool end to end vs dsmr_parser, {short}", "value": f"{r_e2e:.1f}x",
             "target": f">= {GOAL:.0f}x", "ok": r_e2e >= GOAL},
            {"figure": f"CPython meter.Pipeline vs dsmr_parser parsing, {short}", "value": f"{r_pipe:.1f}x",
             "target": "(printed)", "ok": None},
        ]  # fmt: skip
    return figs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_cpython.py", description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000)
    figs = run(ap.parse_args(argv).n)
    return 0 if all(f["ok"] for f in figs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
