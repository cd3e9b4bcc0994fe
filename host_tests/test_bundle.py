"""`make bundle BOARD=...`: one versioned tar of what goes on the board, a manifest
of SHA-256s, its size against the flash budget; `make deploy` copies its files."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import FIRMWARE, REPO, deploy

sys.path.insert(0, str(REPO / "tools"))
import build_device  # noqa: E402
import bundle  # noqa: E402
from pty_board import PtyBoard  # noqa: E402

DEVICE_BOARDS = sorted(p.stem for p in (REPO / "boards").glob("*.json") if json.loads(p.read_text())["chip"] != "host")
STATIC = sorted(p.name for p in (FIRMWARE / "web" / "static").iterdir() if p.is_file())


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{board: (bundle file, the build it was made from)}, made by the command line."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for name in DEVICE_BOARDS:
        build = root / name
        build_device.build(build, board=name, config=False)
        tar = root / f"{name}.tar"
        r = subprocess.run([sys.executable, str(REPO / "tools" / "bundle.py"), "--board", name,
                            "--build", str(build), "--out", str(tar)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"{name} (" in r.stdout and f"of the {bundle.FS_BUDGET} byte filesystem" in r.stdout
        print("\n   " + r.stdout.strip())
        out[name] = (tar, build)
    return out


def _members(tar: Path) -> dict[str, bytes]:
    with tarfile.open(tar) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]


@pytest.mark.parametrize("name", DEVICE_BOARDS)
def test_bundle_content_and_manifest(bundles, name: str):
    tar, build = bundles[name]
    with tarfile.open(tar) as t:
        assert t.getnames()[0] == "manifest.json"
    files = _members(tar)
    man = json.loads(files.pop("manifest.json"))
    spec = json.loads((REPO / "boards" / f"{name}.json").read_text())
    version = (FIRMWARE / "version.py").read_text().split('"')[-2]
    assert list(man) == ["format", "version", "board", "chip", "arch", "bytes", "files"]
    assert (man["version"], man["board"], man["chip"]) == (version, name, spec["chip"])
    assert man["arch"] == build_device.board_march(name)
    assert [e["path"] for e in man["files"]] == list(files) == sorted(files)
    for e in man["files"]:
        data = files[e["path"]]
        assert list(e) == ["path", "size", "sha256"]
        assert (e["size"], e["sha256"]) == (len(data), hashlib.sha256(data).hexdigest()), e["path"]
    assert man["bytes"] == sum(len(v) for v in files.values())
    # every module of the build for this chip (the viper one is its machine code), the
    # board file and the boot sources; nothing the board does not use
    want = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()} - set(bundle.LEFT_OUT)
    static = {f"web/static/{n}" for n in STATIC}
    assert set(files) - {f + ".gz" for f in static} == want - static
    for rel in want - static:
        assert files[rel] == (build / rel).read_bytes(), rel
    assert files[f"boards/{name}.json"] == (REPO / "boards" / f"{name}.json").read_bytes()
    assert "config.json" not in files and "boards_host.mpy" not in files
    # the web assets gzipped (each saves flash here), unpacking to the source
    for n in STATIC:
        packed = files.get(f"web/static/{n}.gz")
        assert packed is not None, f"{n} not gzipped"
        assert gzip.decompress(packed) == (FIRMWARE / "web" / "static" / n).read_bytes()
        assert len(packed) < (FIRMWARE / "web" / "static" / n).stat().st_size
        assert packed[3] == 0 and packed[4:8] == b"\0\0\0\0"  # no file name, no time: reproducible


def test_bundle_size_against_the_flash_budget(bundles):
    """Well inside the stock filesystem (2 MiB of a 4 MiB flash), which also holds config and spool."""
    assert bundle.FS_BUDGET == 0x200000
    for name, (tar, _) in bundles.items():
        man = json.loads(_members(tar)["manifest.json"])
        line, ok = bundle.report(tar, man)
        assert ok, line
        on_flash = bundle.flash_bytes([e["size"] for e in man["files"]], 3)
        assert man["bytes"] < 150_000 and on_flash < bundle.FS_BUDGET // 4, line


def test_bundle_is_reproducible(bundles, tmp_path: Path):
    tar, build = bundles["esp32-devkit"]
    again, _ = bundle.make("esp32-devkit", tmp_path / "again.tar", build)
    assert again.read_bytes() == tar.read_bytes()


def test_a_changed_file_is_refused(bundles, tmp_path: Path):
    tar, _ = bundles["esp32-devkit"]
    files = _members(tar)
    man = json.loads(files.pop("manifest.json"))
    assert bundle.read(tar)[0] == man
    bad = dict(files)
    bad["app.mpy"] = bad["app.mpy"][:-1] + bytes([bad["app.mpy"][-1] ^ 1])
    bundle.write_tar(tmp_path / "bad.tar", man, bad)
    with pytest.raises(ValueError, match="app.mpy does not match its SHA-256"):
        bundle.read(tmp_path / "bad.tar")
    del files["clock.mpy"]
    bundle.write_tar(tmp_path / "short.tar", man, files)
    with pytest.raises(ValueError, match="clock.mpy missing"):
        bundle.read(tmp_path / "short.tar")


def test_unknown_board_is_refused():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "bundle.py"), "--board", "esp32-nonesuch"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0 and "no board file boards/esp32-nonesuch.json" in r.stderr


# --- make deploy: the bundle's files onto a board on a (pseudo) serial port ---------


def test_deploy_copies_the_bundle(bundles, board: PtyBoard, tmp_path: Path):
    tar, _ = bundles["esp32-devkit"]
    files = _members(tar)
    man = json.loads(files.pop("manifest.json"))
    bad = dict(files, **{"main.py": b"print('not the release')\n"})
    bundle.write_tar(tmp_path / "bad.tar", man, bad)
    r = deploy(board, "--bundle", str(tmp_path / "bad.tar"))
    assert r.returncode == 2 and "main.py does not match" in r.stderr
    assert sorted(p.name for p in board.fs.iterdir()) == ["bootinfo.json", "machine.py"]  # nothing changed

    r = deploy(board, "--bundle", str(tar))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SHA-256 checked" in r.stdout
    got = {p.relative_to(board.fs).as_posix(): p.read_bytes() for p in board.fs.rglob("*") if p.is_file()}
    # the code in app/ (the folder an update switches), boot.py and main.py at the root
    want = {k if k in ("boot.py", "main.py") else "app/" + k: v for k, v in files.items()}
    assert set(got) - set(want) <= {"machine.py", "bootinfo.json", "config.json"}  # (a developer's config)
    assert {k: got[k] for k in want} == want
    assert got["bootinfo.json"] == b"{}"


def test_make_console_opens_the_repl(board: PtyBoard):
    """`make console PORT=...`: mpremote's REPL on a terminal; a line typed there runs
    on the board, Ctrl-] leaves."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: make on a terminal, as a user runs it
        os.execvp("make", ["make", "-s", "-C", str(REPO), "console", f"PORT={board.port}"])
    seen = b""

    def until(what: bytes, timeout: float = 30.0) -> bool:
        nonlocal seen
        end = time.monotonic() + timeout
        while what not in seen and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:  # the child ended
                    break
        return what in seen

    try:
        assert until(b"Use Ctrl-] or Ctrl-x to exit this shell"), seen.decode(errors="replace")
        os.write(fd, b"\r")
        assert until(b">>> "), seen.decode(errors="replace")
        os.write(fd, b"print(6 * 7, 'on the board')\r")
        assert until(b"42 on the board"), seen.decode(errors="replace")
        os.write(fd, b"\x1d")  # Ctrl-]
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
