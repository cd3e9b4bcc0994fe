"""firmware/fsutil.py, the power-safe file primitive (config, boot info, spool
cursor, history): a power cut after any operation, or inside any write after any
byte, leaves the old content or the new one, on FAT (no rename over a file) and
littlefs; on CPython and under MicroPython's Unix port (the same cases,
host_tests/mp/cut_cases.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import describe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "host_tests" / "mp"))

import cut_cases  # noqa: E402
import fsutil  # noqa: E402


@pytest.fixture
def fake():
    yield
    cut_cases.uninstall()


@pytest.mark.parametrize("fat", [True, False], ids=["fat", "littlefs"])
def test_cut_at_every_step_of_two_writes(fake, fat):
    assert cut_cases.case_cut_at_every_step(fat) > 1000


@pytest.mark.parametrize("fat", [True, False], ids=["fat", "littlefs"])
def test_config_save_cut_at_every_step(fake, fat):
    assert cut_cases.case_config_save(fat) > 800  # one cut per byte of the file, at least


def test_under_micropython(unix_micropython):
    r = unix_micropython([ROOT / "host_tests" / "mp" / "cut_cases.py"], path=[ROOT / "firmware", ROOT / "host_tests" / "mp"])
    assert r.returncode == 0, describe(r)
    assert b"cuts checked on micropython" in r.stdout


def test_real_files(tmp_path):
    p = str(tmp_path / "x.json")
    assert fsutil.read(p) == (None, "missing")
    fsutil.write_atomic(p, "one")
    fsutil.write_atomic(p, b"two")
    assert fsutil.read(p) == (b"two", "")
    assert (tmp_path / "x.json").read_bytes() == b"two#p1crc %08x\n" % __import__("zlib").crc32(b"two")
    assert (tmp_path / "x.json.bak").read_bytes().startswith(b"one#p1crc ")
    # damaged (a flash error, an edit that kept the checksum line): the last whole copy
    (tmp_path / "x.json").write_bytes(b"twX#p1crc %08x\n" % __import__("zlib").crc32(b"two"))
    assert fsutil.read(p) == (b"one", ".bak")
    (tmp_path / "x.json.bak").unlink()
    assert fsutil.read(p) == (None, "damaged")
    # a file without a checksum line (by hand, older firmware) is taken as it is
    (tmp_path / "x.json").write_bytes(b"hand")
    assert fsutil.read(p) == (b"hand", "")
