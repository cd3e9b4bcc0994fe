"""firmware/warmup.py: at boot, the names of every module the firmware loads only
for a moment are interned (and the modules dropped again), so that MicroPython
never has to grow its name pool later in a heap cut into pieces (docs/MEMORY.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
MICROPYTHON = Path(sys.executable).parent / "micropython"
sys.path.insert(0, str(FIRMWARE))

import warmup  # noqa: E402


def test_every_cold_module_list_of_the_firmware_is_warmed_up():
    import meter
    from net import mqtt_client
    from web import api

    for names in (meter._GENERAL, mqtt_client._RARE, api._COLD, api._HIST, api._REL):
        assert set(names) <= set(warmup.COLD), set(names) - set(warmup.COLD)


def test_warmup_leaves_no_module_loaded_under_micropython():
    script = (
        "import sys\nsys.path[:0] = [%r]\n"
        "before = sorted(sys.modules)\n"
        "import warmup\nwarmup.run()\n"
        "after = sorted(m for m in sys.modules if m not in ('warmup', 'mem'))  # mem: kept, the firmware's own\n"
        "print(before == [m for m in after if m in before], [m for m in after if m not in before])\n"
    ) % str(FIRMWARE)
    r = subprocess.run([str(MICROPYTHON), "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "[]"], r.stdout + r.stderr
    assert "warmup:" not in r.stdout  # every module imported
