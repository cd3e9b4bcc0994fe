"""firmware/net/spool.py, the MQTT offline spool on flash: pure file I/O, fast.

The cases live in host_tests/mp/spool_cases.py so that the very same ones run
under MicroPython too (host_tests/mp/test_spool_mp.py); here each gets its own
tmp dir. Plus a fuzz of arbitrary segment and cursor files (hypothesis).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "host_tests" / "mp"))

import spool_cases  # noqa: E402
from net.spool import Spool  # noqa: E402


@pytest.mark.parametrize("case", spool_cases.CASES, ids=lambda f: f.__name__[5:])
def test_spool(case, tmp_path):
    case(str(tmp_path))


@settings(max_examples=200, deadline=None)
@given(
    segs=st.lists(st.binary(max_size=300), max_size=3),
    cursor=st.binary(max_size=24),
    limit=st.integers(min_value=0, max_value=4096),
)
def test_arbitrary_files_never_raise(tmp_path_factory, segs, cursor, limit):
    d = tmp_path_factory.mktemp("fuzz")
    for i, data in enumerate(segs):
        (d / f"spool-{i}.bin").write_bytes(data)
    (d / "spool.pos").write_bytes(cursor)
    sp = Spool(str(d), limit)
    for _ in range(1000):
        if sp.read() is None:
            break
    else:
        raise AssertionError("read() never ran dry")
    sp.commit()
    ok = sp.append("t", "x" * 10)
    assert ok == (limit // 4 >= 12 + 1 + 10)
    assert len(sp) == (1 if ok else 0)
