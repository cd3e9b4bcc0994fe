"""Load management (firmware/loads.py, loadscold.py; docs/LOADCONTROL.md): the rules fed
readings directly (host_tests/mp/loads_cases.py) on CPython and under the Unix-port
MicroPython, the config's checks, then end to end over HTTP on the host board."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import describe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "host_tests" / "mp"))

import config  # noqa: E402
import loads_cases  # noqa: E402


@pytest.mark.parametrize("case", loads_cases.CASES, ids=lambda f: f.__name__[5:])
def test_loads(case, tmp_path):
    case(str(tmp_path))


def test_loads_under_micropython(unix_micropython, tmp_path):
    r = unix_micropython(
        [ROOT / "host_tests" / "mp" / "loads_cases.py", tmp_path],
        heap="4M",
        path=[ROOT / "firmware", ROOT / "host_tests" / "mp"],
    )
    assert r.returncode == 0, describe(r)
    assert b"loads cases on micropython failed: 0" in r.stdout, describe(r)
