"""No cliff, below the firmware: MicroPython's `select.poll.register` that runs out
of memory half-way leaves an empty entry, and the next poll crashes (a reset on
the ESP32, whose poll calls every entry; extmod/modselect.c: "This case is not
handled"). `aio.guard_poller()` (the firmware's start) makes asyncio's
registration give back a spare block and register again.

Under the Unix port with a 64K heap filled but for 0 to 8 blocks, one subprocess
each (mp/poller_case.py): the registration then fails before, in or after the
step that leaves the empty entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import describe, run_unix_micropython

ROOT = Path(__file__).resolve().parent.parent
CASE = ROOT / "host_tests" / "mp" / "poller_case.py"
PATH = [ROOT / "firmware", ROOT / "host_tests" / "mp"]
GAPS = range(9)


def _runs(mode: str) -> list[subprocess.CompletedProcess[bytes]]:
    return [run_unix_micropython([CASE, mode, str(g)], heap="64K", path=PATH) for g in GAPS]


def test_a_registration_that_runs_out_of_memory_crashes_the_bare_poller():
    """The MicroPython bug this guards against, as pinned (if this fails after an
    upgrade, MicroPython handles the case now and aio.guard_poller can go)."""
    crashed = [r for r in _runs("bare") if r.returncode in (-11, 139)]
    assert crashed, "no run crashed"
    assert all(r.stdout.decode().startswith("MemoryError entry") for r in crashed), describe(crashed[0])


def test_the_guarded_registration_never_leaves_an_empty_entry():
    runs = _runs("guard")
    for r in runs:
        assert r.returncode == 0, describe(r)
        first, poll = r.stdout.decode().splitlines()
        # registered (the socket polled), or a MemoryError that left nothing behind
        assert first.startswith("registered entry") and poll == "poll 1" or first.startswith(
            "MemoryError no entry"
        ) and poll == "poll 0", describe(r)
    assert any("spare used" in r.stdout.decode() for r in runs)  # (the case itself was met)


def test_guard_poller_is_in_asyncio_under_micropython_and_a_no_op_on_cpython():
    script = (
        "import asyncio, aio\naio.guard_poller()\naio.guard_poller()\n"
        "print(asyncio.core._io_queue._enqueue.__name__, aio.spare is not None)\n"
        "async def main():\n    await asyncio.sleep_ms(5)\nasyncio.run(main())\nprint('ok')\n"
    )
    r = run_unix_micropython(["-c", script], path=PATH)
    assert r.returncode == 0 and r.stdout.decode().split() == ["guarded", "True", "ok"], describe(r)
    r2 = subprocess.run([sys.executable, "-c", "import aio; aio.guard_poller()"], cwd=ROOT / "firmware")
    assert r2.returncode == 0
