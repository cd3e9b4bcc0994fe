"""The raw telegram port as Home Assistant's DSMR integration reads it: with
dsmr_parser's own asyncio TCP reader (`create_tcp_dsmr_reader`, pinned in
requirements-dev.txt). For the Finnish (E360, dsmr_parser's "5S") and the
DSMR 5 dialect every telegram arrives with its CRC accepted, and every value
dsmr_parser finds equals /api/v1/reading exactly: Decimal against the
firmware's fixed-point digits (JSON numbers read as Decimal, never float),
time stamps with the same wall-clock digits (and, for DSMR 5, instant)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from dsmr_parser.clients.protocol import create_tcp_dsmr_reader
from runtime_harness import REPO, Firmware, MeterServer

sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "firmware"))

from p1.table import by_name  # noqa: E402
from simulate import Meter  # noqa: E402

VERSION = {"fi": "5S", "dsmr5": "5"}  # dsmr_parser's name of each dialect
TELEGRAMS = 4
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
# Total reactive power: in the E360's telegram, not in dsmr_parser's "5S" spec.
NOT_IN_SPEC = {"fi": ["1-0:3.7.0", "1-0:4.7.0"], "dsmr5": []}
# The power failure log and the M-Bus device type and id are not in /api/v1/reading.
NOT_OURS = {"fi": [], "dsmr5": ["0-1:24.1.0", "0-1:96.1.0", "1-0:99.97.0"]}
NOT_READINGS = {"meter", "age_s"}


def obis_of(regex_key: str, obis_id: tuple[int, int]) -> str:
    """OBIS code of a dsmr_parser key; a character class ([1-9] channel,
    [13] or [01] last digit) stands for its first member."""
    m = re.search(r":(\d+)\\\.(\d+)\\\.(?:\[(\d)[^\]]*\]|(\d+))", regex_key)
    assert m, regex_key
    a, b, first, last = m.groups()
    return "%d-%d:%s.%s.%s" % (*obis_id, a, b, first or last)


def theirs_by_obis(telegram) -> dict[str, list]:
    """OBIS code -> dsmr_parser's value groups of that object."""
    out = {}
    for key in list(telegram.keys()):
        obj = telegram[key]
        if hasattr(obj, "obis_id_code"):
            out[obis_of(key, obj.obis_id_code)] = [v["value"] for v in obj.values]
    return out


def equal(dialect: str, kind: str, ours, values: list) -> bool:
    """Our reading against dsmr_parser's value groups of the same object."""
    if kind == "ts":
        # dsmr_parser reads every meter's wall clock in Amsterdam's zone and
        # ignores the W/S flag: the digits must agree; for DSMR 5 the instant too.
        theirs = next(v for v in values if isinstance(v, datetime))
        mine = datetime.fromisoformat(ours)
        wall = theirs.astimezone(AMSTERDAM).replace(tzinfo=None) == mine.replace(tzinfo=None)
        return wall and (dialect != "dsmr5" or mine == theirs)
    if kind == "str":
        return ours == (values[-1] or "")  # (dsmr_parser: None for an empty text)
    theirs = values[-1]  # the number (after an M-Bus time stamp)
    if isinstance(ours, Decimal):  # fixed point: same value and the same digits
        return isinstance(theirs, Decimal) and ours == theirs and str(ours) == str(theirs)
    return isinstance(ours, int) and theirs == ours  # counters (dsmr_parser: int)


async def read_and_compare(fw: Firmware, sim: MeterServer, meter: Meter, dialect: str) -> int:
    got: asyncio.Queue = asyncio.Queue()
    conn = create_tcp_dsmr_reader("127.0.0.1", fw.raw_port, VERSION[dialect], got.put_nowait)
    transport, protocol = await asyncio.wait_for(conn, 10)
    compared = 0
    try:
        await asyncio.to_thread(fw.wait, lambda: fw.status()["raw_tcp"]["clients"] == 1, what="the reader")
        for n in range(1, TELEGRAMS + 1):
            meter.step(10)
            sim.send(meter.telegram())
            telegram = await asyncio.wait_for(got.get(), 10)  # (a bad CRC is never passed on)
            st, _, body = await asyncio.to_thread(fw.get, "/api/v1/reading")
            assert st == 200
            reading = json.loads(body, parse_float=Decimal)
            assert (await asyncio.to_thread(fw.status))["meter"]["accepted"] == n
            theirs = theirs_by_obis(telegram)
            seen = set()
            for name, ours in reading.items():
                if name in NOT_READINGS:
                    continue
                obis, _unit, kind = by_name(name)
                if obis.startswith("0-n:"):  # M-Bus: whichever channel carries it
                    obis = next(k for k in theirs if k[2] != "0" and k.endswith(obis[3:]))
                seen.add(obis)
                if obis in NOT_IN_SPEC[dialect]:
                    continue
                assert obis in theirs, f"{dialect}: dsmr_parser did not find {name} ({obis})"
                assert equal(dialect, kind, ours, theirs[obis]), (
                    f"{dialect} {name}: {ours!r}, dsmr_parser {theirs[obis]!r}"
                )
                compared += 1
            assert sorted(set(theirs) - seen) == NOT_OURS[dialect]
            assert seen >= set(NOT_IN_SPEC[dialect])
    finally:
        transport.close()
    return compared


@pytest.mark.parametrize("dialect", ["fi", "dsmr5"])
def test_dsmr_parser_reads_the_raw_port(tmp_path, dialect):
    meter = Meter(seed=11, dialect=dialect)
    sim = MeterServer()
    offset = {"fi": "+02:00", "dsmr5": "+01:00"}[dialect]  # the meter's own zone
    fw = Firmware(tmp_path, "--source", sim.source, config='{"meter": {"std_offset": "%s"}}' % offset)
    try:
        sim.accept()
        compared = asyncio.run(read_and_compare(fw, sim, meter, dialect))
        assert compared >= TELEGRAMS * 15, compared
    finally:
        fw.stop_ok()
        sim.close()
