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


def test_every_cold_module_list_of_the_firmware_is_warmed_up_or_later():
    import meterrare
    from net import mqtt_client
    from web import api

    for names in (meterrare._GENERAL, mqtt_client._RARE, api._COLD, api._HIST, api._REL, api._UPD):
        assert set(names) <= set(warmup.COLD + warmup.LATER), set(names) - set(warmup.COLD + warmup.LATER)
    assert not set(warmup.COLD) & set(warmup.LATER)
    assert set(mqtt_client._RARE) <= set(warmup.COLD)  # (MQTT's: every dongle with MQTT)


def test_the_name_pools_are_allocated_at_boot_and_later_names_fit_them(tmp_path):
    """Under MicroPython, the device build (.mpy): after the modules a running dongle keeps
    and warmup.run(), the 6th name pool (names 621-1260, one block of ~4.5 KB on the
    ESP32) exists; after every cold module of LATER too, there is still no 7th (1280
    names, ~9 KB in one block, which a fragmented heap would not have)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import build_device
    import memory

    build_device.build(tmp_path / "code", march="x64", config=False)
    script = (
        "import sys, micropython\nsys.path[:0] = [%r, %r]\n"
        "import %s, boards_host\n"
        "import warmup\nwarmup.run()\nmicropython.qstr_info()\n"
        "warmup.run(warmup.LATER)\nmicropython.qstr_info()\n"
    ) % (str(tmp_path / "code"), str(tmp_path / "code" / "lib"), ", ".join(memory.RUNTIME_MODULES))
    r = subprocess.run([str(MICROPYTHON), "-X", "heapsize=4M", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pools = [dict(kv.split("=") for kv in ln.split(": ", 1)[1].split(", ")) for ln in r.stdout.splitlines()
             if ln.startswith("qstr pool:")]  # fmt: skip
    assert len(pools) == 2, r.stdout
    boot, later = pools
    print("names interned at boot", boot["n_qstr"], "with LATER", later["n_qstr"])
    assert boot["n_pool"] == "6" and int(boot["n_qstr"]) > 620, boot
    assert later["n_pool"] == "6" and int(later["n_qstr"]) <= 1260, later


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
