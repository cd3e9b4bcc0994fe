"""The update's switch at boot (firmware/otaboot.py, docs/UPDATE.md): the device's
boot.py on a root filesystem laid out as `make deploy` leaves it (MicroPython's
Unix port with a folder mounted at /, as host_tests/pty_board.py does), and the
switch and the rollback cut by a power failure after every file operation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIRMWARE, VENV_BIN

sys.path.insert(0, str(FIRMWARE))
import fsutil  # noqa: E402
import otaboot  # noqa: E402


def version_file(v: str) -> str:
    return f'VERSION = "{v}"\n'


def layout(root: Path, state: dict | None, stage: bool = True) -> None:
    """root/app (0.1.0, with otaboot and fsutil as the device has them), root/stage (0.2.0)."""
    (root / "app").mkdir(parents=True)
    for m in ("otaboot.py", "fsutil.py"):
        (root / "app" / m).write_bytes((FIRMWARE / m).read_bytes())
    (root / "app" / "version.py").write_text(version_file("0.1.0"))
    if stage:
        (root / "stage").mkdir()
        (root / "stage" / "version.py").write_text(version_file("0.2.0"))
        for m in ("otaboot.py", "fsutil.py"):
            (root / "stage" / m).write_bytes((FIRMWARE / m).read_bytes())
    if state is not None:
        s = dict({"state": "staged", "version": "0.2.0", "previous": "0.1.0", "boots": 0, "trial_s": None,
                  "result": "staged"}, **state)  # fmt: skip
        otaboot.save(str(root) + "/", s)


def state(root: Path) -> dict:
    data, _ = fsutil.read(str(root / "update.json"))
    assert data is not None
    return json.loads(data)


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("update.json"))


def ver(d: Path) -> str:
    return (d / "version.py").read_text().split('"')[1]


# --- the device's boot.py under MicroPython, / being a folder of ours -----------

BOOT = """import vfs, os, sys
vfs.umount("/")
vfs.mount(vfs.VfsPosix({fs!r}), "/")
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]
exec(open("/boot.py").read())
import version
print(sys.path[:2], version.VERSION, "otaboot" in sys.modules)
"""


def device_boot(fs: Path) -> str:
    exe = VENV_BIN / "micropython"
    if not exe.exists():
        pytest.fail("micropython (the Unix port) is not installed: run `make setup`", pytrace=False)
    r = subprocess.run([str(exe), "-c", BOOT.format(fs=str(fs))], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_device_boot_py_switches_counts_and_rolls_back(tmp_path: Path):
    fs = tmp_path / "fs"
    layout(fs, {})
    (fs / "boot.py").write_bytes((FIRMWARE / "boot.py").read_bytes())
    out = device_boot(fs)
    # the new version imported from /app, otaboot gone again
    assert out.splitlines() == ["boot: update: trial", "['/app', '/app/lib'] 0.2.0 False"]
    assert names(fs) == ["app", "boot.py", "prev"] and ver(fs / "prev") == "0.1.0"
    assert state(fs) == {"state": "trial", "version": "0.2.0", "previous": "0.1.0", "boots": 1, "trial_s": None,
                         "result": "trying 0.2.0"}  # fmt: skip
    for n in (2, 3):  # it crashes and the board resets: each boot counts
        assert device_boot(fs).splitlines()[0] == "boot: update: trial"
        assert state(fs)["boots"] == n
    out = device_boot(fs)
    assert out.splitlines() == ["boot: update: rolled_back", "['/app', '/app/lib'] 0.1.0 False"]
    assert names(fs) == ["app", "boot.py"]
    s = state(fs)
    assert (s["state"], s["result"]) == ("rolled_back", "rolled back to 0.1.0: 0.2.0 did not start (3 boots)")
    assert device_boot(fs).splitlines() == ["boot: update: rolled_back", "['/app', '/app/lib'] 0.1.0 False"]


def test_device_boot_py_without_app_or_update(tmp_path: Path):
    fs = tmp_path / "fs"
    fs.mkdir()
    (fs / "boot.py").write_bytes((FIRMWARE / "boot.py").read_bytes())
    (fs / "version.py").write_text(version_file("0.0.9"))  # a flat deploy: code at /
    assert device_boot(fs).splitlines() == ["['', '.frozen'] 0.0.9 False"]
    layout(fs, None, stage=False)  # a bundle deploy, no update yet: otaboot not even imported
    assert device_boot(fs).splitlines() == ["['/app', '/app/lib'] 0.1.0 False"]


# --- a power cut after every file operation ---------------------------------------


class PowerCut(Exception):
    pass


def cut_after(monkeypatch, n: int) -> None:
    """Every rename, remove, rmdir, mkdir and file open for writing counts; the n-th raises."""
    left = [n]

    def wrap(fn):
        def op(*a, **k):
            if left[0] <= 0:
                raise PowerCut
            left[0] -= 1
            return fn(*a, **k)

        return op

    for name in ("rename", "remove", "rmdir", "mkdir"):
        monkeypatch.setattr(os, name, wrap(getattr(os, name)))
    real_open = open

    def opener(path, mode="r", *a, **k):
        if "w" in mode:
            return wrap(real_open)(path, mode, *a, **k)
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", opener)


def ops_of(tmp_path: Path, make) -> int:
    """How many counted operations one whole boot takes."""
    root = tmp_path / "count"
    make(root)
    n = 0
    while True:
        r = tmp_path / f"count{n}"
        make(r)
        with pytest.MonkeyPatch.context() as mp:
            cut_after(mp, n)
            try:
                otaboot.boot(str(r) + "/")
                return n
            except PowerCut:
                n += 1


@pytest.mark.parametrize("kind", ["switch", "rollback"])
def test_a_power_cut_anywhere_then_boot_again(tmp_path: Path, kind: str):
    if kind == "switch":
        make = lambda r: layout(r, {})  # noqa: E731
    else:  # the new version runs, the old one in prev, and the trial failed
        def make(r):
            layout(r, {}, stage=True)
            otaboot.boot(str(r) + "/")
            s = state(r)
            s.update(state="rollback", result="0.2.0 not healthy within 300 s: no telegram")
            otaboot.save(str(r) + "/", s)
    total = ops_of(tmp_path, make)
    assert total >= 6
    for n in range(total):
        root = tmp_path / f"r{n}"
        make(root)
        with pytest.MonkeyPatch.context() as mp:
            cut_after(mp, n)
            with pytest.raises(PowerCut):
                otaboot.boot(str(root) + "/")
        got = otaboot.boot(str(root) + "/")  # the next boot, power back
        s = state(root)
        if kind == "switch":
            # (a cut once the trial's state was whole on flash: that boot counted too)
            assert (got, s["state"]) == ("trial", "trial") and s["boots"] in (1, 2), n
            assert names(root) == ["app", "prev"] and ver(root / "app") == "0.2.0" and ver(root / "prev") == "0.1.0"
        else:
            assert (got, s["state"]) == ("rolled_back", "rolled_back"), n
            assert s["result"] == "rolled back to 0.1.0: 0.2.0 not healthy within 300 s: no telegram"
            assert names(root) == ["app"] and ver(root / "app") == "0.1.0", n
