"""Shared fixtures for the host tests: repo paths and running code under MicroPython.

`run_micropython(args)` runs `node tools/mp/run.mjs ARGS` (the WebAssembly build of
MicroPython, with firmware/ on sys.path; see run.mjs for the options) and returns the
CompletedProcess with bytes stdout/stderr. The `micropython` fixture is the same helper.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
HOST_TESTS = REPO / "host_tests"
TELEGRAMS_DIR = HOST_TESTS / "telegrams"
MP_TESTS_DIR = HOST_TESTS / "mp"
RUN_MJS = REPO / "tools" / "mp" / "run.mjs"
MP_PACKAGE = REPO / "tools" / "mp" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
VENV_BIN = REPO / ".venv" / "bin"

# host_tests/mp/*.py are MicroPython scripts run through run.mjs, not pytest modules.
collect_ignore = ["mp"]

TELEGRAM_FILES = sorted(TELEGRAMS_DIR.glob("*.txt"))
MP_TEST_FILES = sorted(MP_TESTS_DIR.glob("test_*.py"))

SETUP_HINT = "run `make setup` (it installs node's MicroPython runner in tools/mp)"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed: {SETUP_HINT}", pytrace=False)
    if not MP_PACKAGE.is_dir():
        pytest.fail(f"{MP_PACKAGE.relative_to(REPO)} is missing: {SETUP_HINT}", pytrace=False)
    return node


def run_micropython(
    args: list[str | Path],
    timeout: float = 60,
    input: bytes | None = None,
    cwd: str | Path = REPO,
) -> subprocess.CompletedProcess[bytes]:
    """`node tools/mp/run.mjs *args` under a timeout; stdin is empty unless `input`."""
    cmd = [_node(), str(RUN_MJS), *map(str, args)]
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            input=input if input is not None else b"",
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")[-4000:]
        err = (e.stderr or b"").decode(errors="replace")[-4000:]
        pytest.fail(
            f"MicroPython run timed out after {timeout}s: {' '.join(cmd)}\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err}",
            pytrace=False,
        )


MICROPYTHON_UNIX = VENV_BIN / "micropython"


def run_unix_micropython(
    args: list[str | Path],
    timeout: float = 60,
    heap: str = "2M",
    path: list[str | Path] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """MicroPython's Unix port (`micropython -X heapsize=HEAP ARGS`) with firmware/ (or
    `path`) on sys.path, under a timeout."""
    if not MICROPYTHON_UNIX.exists():
        pytest.fail("the MicroPython Unix port is missing: run `make setup`", pytrace=False)
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(p) for p in (path or [FIRMWARE])) + ":.frozen"
    cmd = [str(MICROPYTHON_UNIX), "-X", f"heapsize={heap}", *map(str, args)]
    try:
        return subprocess.run(
            cmd, cwd=REPO, env=env, input=input if input is not None else b"", capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")[-4000:]
        err = (e.stderr or b"").decode(errors="replace")[-4000:]
        pytest.fail(f"MicroPython run timed out after {timeout}s: {' '.join(cmd)}\n{out}\n{err}", pytrace=False)


def run_cpython(
    args: list[str | Path],
    timeout: float = 60,
    input: bytes | None = None,
    firmware_on_path: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """This interpreter (the venv's) with PYTHONPATH=firmware, under a timeout."""
    env = dict(os.environ)
    if firmware_on_path:
        env["PYTHONPATH"] = str(FIRMWARE)
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        env=env,
        input=input if input is not None else b"",
        capture_output=True,
        timeout=timeout,
    )


def describe(r: subprocess.CompletedProcess[bytes]) -> str:
    """A failure message: the command, exit code, stdout and stderr."""
    cmd = r.args if isinstance(r.args, str) else " ".join(map(str, r.args))
    return (
        f"$ {cmd}\nexit code {r.returncode}\n"
        f"--- stdout ---\n{r.stdout.decode(errors='replace')}\n"
        f"--- stderr ---\n{r.stderr.decode(errors='replace')}"
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def telegram_files() -> list[Path]:
    return TELEGRAM_FILES


@pytest.fixture(scope="session")
def unix_micropython():
    """run_unix_micropython (fails, not skips, when the Unix port is not installed)."""
    return run_unix_micropython


@pytest.fixture(scope="session")
def micropython():
    """The run_micropython helper (fails, not skips, when the runner is not set up)."""
    _node()
    return run_micropython


@pytest.fixture
def board(tmp_path: Path):
    """A MicroPython board on a pseudo-terminal (pty_board.PtyBoard), its
    filesystem in tmp_path/board-fs with a bootinfo.json of its own (the board's
    data, which a deploy must leave alone)."""
    from pty_board import PtyBoard

    exe = VENV_BIN / "micropython"
    if not exe.exists():
        pytest.fail("micropython (the Unix port) is not installed: run `make setup`", pytrace=False)
    b = PtyBoard(str(exe), tmp_path / "board-fs")
    (b.fs / "bootinfo.json").write_text("{}")  # the board's own data stays
    yield b
    b.close()


def deploy(board, *args: str) -> subprocess.CompletedProcess:
    """tools/deploy.py --port <the board's port> ARGS (text output)."""
    return subprocess.run([sys.executable, str(REPO / "tools" / "deploy.py"), "--port", board.port, *args],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def run_cases_under_micropython(name: str, folder: Path) -> None:
    """host_tests/mp/<name>_cases.py under the Unix-port MicroPython (cases.run):
    asserts it ran and that none of its cases failed."""
    r = run_unix_micropython(
        [REPO / "host_tests" / "mp" / f"{name}_cases.py", folder],
        heap="4M",
        path=[REPO / "firmware", REPO / "host_tests" / "mp"],
    )
    assert r.returncode == 0, describe(r)
    assert f"{name} cases on micropython failed: 0".encode() in r.stdout, describe(r)
