"""Shared helpers for the parser tests: recorded telegrams and their expected CRC."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TELEGRAMS = ROOT / "host_tests" / "telegrams"
sys.path.insert(0, str(ROOT / "firmware"))

# What a correct parser reports, from telegrams/SOURCES.md.
BAD_CRC = {"se-aidon-6534-02-edited.txt", "fi-aidon-7534-02.txt", "lu-smarty-01.txt"}


def recorded() -> list[Path]:
    return sorted(TELEGRAMS.glob("*.txt"))


def frames(data: bytes, chunks: list[int] | None = None, size: int = 3072, end: bool = True):
    """Run a Framer over data cut into the given chunk sizes; return (frames, crcs, counters)."""
    from p1.framer import Framer

    fr = Framer(size)
    out, crcs = [], []
    pos = 0
    sizes = list(chunks or [len(data) or 1])
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)] or 1
        i += 1
        fr.feed(data[pos : pos + n])
        pos += n
        while (f := fr.next_frame()) is not None:
            out.append(bytes(f))
            crcs.append(fr.crc)
    if end and (f := fr.end()) is not None:
        out.append(bytes(f))
        crcs.append(fr.crc)
    return out, crcs, dict(fr.counters)


def body_of(data: bytes, std_offset: int = 120) -> tuple[bytes, int]:
    """(JSON body, cut) of the one telegram in `data`, as the meter pipeline makes it."""
    from p1.body import Encoder
    from p1.bodyread import cut_of
    from p1.jsonout import dumps
    from p1.parse import parse
    from p1.readings import readings

    fs, crcs, _ = frames(data)
    assert len(fs) == 1, "expected one telegram"
    got = Encoder(3072, std_offset).encode(fs[0])
    if got is None:
        body = dumps(readings(parse(fs[0], crcs[0], std_offset))).encode()
        got = body, cut_of(body)
    return got


def publish(hub, data: bytes, **kw):
    """Publish the telegram in `data` into a hub the way the pipeline does."""
    body, cut = body_of(data)
    return hub.publish(body, cut, data, **kw)
