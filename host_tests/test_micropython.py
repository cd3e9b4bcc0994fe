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


MALFORMED = (
    b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.8.1(000004.426*kWh)\r\n1-0:1.8.2(00000x.399*kWh)\r\n"
    b"1-0:32.7.0(230.1*mV)\r\n1-0:32.7.0(231.0*V)\r\n0-0:1.0.0(171302192002W)\r\n(00001.001)\r\n"
    b"garbage line\r\n1-0:2.8.0(1*kWh)(2*kWh)\r\n0-0:96.13.0(caf\xe9 \x02\"\\)\r\n0-1:24.2.1(x)(1*m3)\r\n!\r\n"
    b"noise\xff\x00/LGF5E360\r\n\r\n1-0:1.8.0(00000896.020*kWh)\r\n1-0:21.7.0(0000.0a0*kW)\r\n!0000\r\n"
)


def test_decode_of_malformed_telegrams_is_identical_on_both_interpreters(micropython, tmp_path):
    """Bad lines, bad CRCs, noise and non-ASCII: MicroPython prints the same bytes as CPython,
    error objects' keys in the same order, the --stats counters too."""
    f = tmp_path / "bad.txt"
    f.write_bytes(MALFORMED)
    cp = run_cpython(["-m", "p1", "decode", "--stats", f])
    mp = micropython(["-m", "p1", "decode", "--stats", f], timeout=120)
    assert cp.returncode == 0 and mp.returncode == 0, describe(mp)
    assert b'"errors": [{"line": ' in cp.stdout and b'"error": ' in cp.stdout
    assert mp.stdout == cp.stdout, _first_difference(cp.stdout, mp.stdout, "cpython", "micropython")
    assert mp.stderr == cp.stderr  # the --stats counters


def test_unload_gives_a_cold_modules_ram_back(unix_micropython):
    """mem.unload: a cold submodule leaves sys.modules and its package, and most of
    what its import took is free again (its names stay interned)."""
    code = (
        "import gc, sys\nimport p1, p1.obis\nfrom mem import unload\n"
        "gc.collect(); a = gc.mem_alloc()\nimport p1.table\ngc.collect(); b = gc.mem_alloc()\n"
        "unload('p1.table')\ngc.collect(); c = gc.mem_alloc()\n"
        "print(b - a, b - c, hasattr(p1, 'table'), 'p1.table' in sys.modules)"
    )
    r = unix_micropython(["-c", code])
    assert r.returncode == 0, describe(r)
    took, freed, attr, mod = r.stdout.split()
    assert attr == b"False" and mod == b"False"
    assert int(freed) >= int(took) // 2, r.stdout


def test_call_loads_a_cold_module_for_the_call_only(unix_micropython):
    """mem.call, the cold paths' one way in (App._cold_call, the MQTT service's
    rare jobs, load management, Wi-Fi's rare half, web.server.cold): the module and
    what of `drop` it brought in leave RAM after the call, also when the job raises;
    a module imported before stays, so a caller's own import is never pulled away."""
    code = (
        "import sys\nfrom mem import call\n"
        "v = call('p1.jsonout', 'dumps', {'a': 1}, drop=('p1.values',))\n"
        "gone = 'p1.jsonout' not in sys.modules\n"
        "try:\n call('p1.table', 'by_name')\nexcept TypeError:\n err = 'TypeError'\n"
        "gone2 = 'p1.table' not in sys.modules\n"
        "import p1.jsonout\ncall('p1.jsonout', 'dumps', 1)\n"
        "print(v, gone, err, gone2, 'p1.jsonout' in sys.modules)"
    )
    r = unix_micropython(["-c", code])
    assert r.returncode == 0, describe(r)
    assert r.stdout.split() == [b'{"a":', b"1}", b"True", b"TypeError", b"True", b"True"], r.stdout
