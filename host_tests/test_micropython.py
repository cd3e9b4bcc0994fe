"""The firmware under real MicroPython (the WebAssembly port, in node).

- every host_tests/mp/test_*.py runs under MicroPython and must exit 0
- `-m p1 decode FILE` prints byte-identical output under MicroPython, under CPython
  (PYTHONPATH=firmware python -m p1) and through tools/p1tool.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import (
    MP_TEST_FILES,
    MP_TESTS_DIR,
    REPO,
    TELEGRAM_FILES,
    describe,
    run_cpython,
)


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


@pytest.mark.parametrize("path", MP_TEST_FILES, ids=lambda p: p.name)
def test_mp_file(micropython, path: Path):
    r = micropython([path], timeout=120)
    assert r.returncode == 0, f"{path.name} failed under MicroPython\n" + describe(r)


def test_mp_tests_exist():
    assert (MP_TESTS_DIR / "test_mp_smoke.py") in MP_TEST_FILES


@pytest.mark.parametrize("path", TELEGRAM_FILES, ids=lambda p: p.name)
def test_decode_identical_on_both_interpreters(micropython, path: Path):
    rel = _rel(path)
    cp = run_cpython(["-m", "p1", "decode", rel])
    assert cp.returncode == 0, describe(cp)
    assert cp.stdout, f"`python -m p1 decode {rel}` printed nothing"

    mp = micropython(["-m", "p1", "decode", rel], timeout=120)
    assert mp.returncode == 0, describe(mp)

    tool = run_cpython([REPO / "tools" / "p1tool.py", "decode", rel], firmware_on_path=False)
    assert tool.returncode == 0, describe(tool)

    assert mp.stdout == cp.stdout, f"MicroPython and CPython differ for {rel}\n" + _first_difference(
        cp.stdout, mp.stdout, "cpython", "micropython"
    )
    assert tool.stdout == cp.stdout, (
        f"tools/p1tool.py decode differs from python -m p1 decode for {rel}\n"
        + _first_difference(cp.stdout, tool.stdout, "python -m p1", "p1tool.py")
    )


def _first_difference(a: bytes, b: bytes, name_a: str, name_b: str) -> str:
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return f"line {i + 1}:\n  {name_a}: {x!r}\n  {name_b}: {y!r}"
    return f"{name_a}: {len(la)} lines, {name_b}: {len(lb)} lines"
