"""ROMFS (`make deploy-romfs`): the image of a device build, read back and run
under MicroPython's Unix port (`vfs.VfsRom`), and what it saves in RAM.

- tools/romfs.py writes exactly what `mpremote romfs build` writes for the same
  tree, and leaves out what must stay on the writable filesystem
- mounted under the Unix port, the image holds every file of the build, byte for byte
- the firmware runs from it: tools/mp/unix_main.py --romfs reads telegrams from a
  loopback TCP meter and serves /api/v1/reading and the live page (/rom/web/static)
- the live heap of the imported code, from ROMFS and from .mpy files, is printed
  (ROMFS must take less: bytecode and strings stay in the image)
- `make deploy-romfs` (tools/deploy.py --romfs) asks the board first and refuses,
  changing nothing, on a MicroPython without ROMFS like the stock ESP32 images:
  real mpremote against the Unix port's REPL on a pseudo-terminal (pty_board.py)
- the partition table for a MicroPython image with ROMFS (tools/partitions.py),
  read back from its binary form entry by entry
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIRMWARE, REPO, TELEGRAMS_DIR, VENV_BIN
from runtime_harness import MeterServer, exact_json, free_port

sys.path.insert(0, str(REPO / "tools"))
import build_device  # noqa: E402
import deploy  # noqa: E402
import partitions  # noqa: E402
import romfs  # noqa: E402
from pty_board import PtyBoard  # noqa: E402

BOARD = "esp32-devkit"  # the classic ESP32: the board ROMFS is for
TELEGRAM = TELEGRAMS_DIR / "nl-dsmr5-iskra-01.txt"
# Everything a running dongle imports (tools/memory.py RUNTIME_MODULES).
MODULES = (
    "p1.framer p1.body p1.obis p1.crc app board hub meter aio log mem clock version "
    "web.server web.api net.mqtt_client net.mqtt net.tcp_raw"
).split()


def _micropython() -> str:
    exe = VENV_BIN / "micropython"
    if not exe.exists():
        pytest.fail("micropython (the Unix port) is not installed: run `make setup`", pytrace=False)
    return str(exe)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("romfs") / BOARD
    build_device.build(out, board=BOARD, config=False)
    return out


@pytest.fixture(scope="module")
def image(build: Path) -> Path:
    path = build.with_name(BOARD + ".romfs")
    path.write_bytes(romfs.make_image(build))
    return path


def _mp(script: str, *args: str, heap: str = "512K", timeout: float = 60) -> str:
    r = subprocess.run(
        [_micropython(), "-X", f"heapsize={heap}", "-c", script, *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert r.returncode == 0, f"micropython failed\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_image_is_what_mpremote_builds(build: Path, image: Path, tmp_path: Path):
    """Same bytes as `mpremote romfs build --no-mpy` over the same files."""
    stage = tmp_path / "stage"
    for rel in romfs.image_files(build):
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_bytes((build / rel).read_bytes())
    out = tmp_path / "mpremote.romfs"
    r = subprocess.run(
        [sys.executable, "-m", "mpremote", "romfs", "--no-mpy", "-o", str(out), "build", str(stage)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, f"mpremote romfs build failed (is mpremote installed?)\n{r.stdout}{r.stderr}"
    assert out.read_bytes() == image.read_bytes()


def test_image_contents(build: Path):
    files = romfs.image_files(build)
    assert "app.mpy" in files and "p1/_crc_viper.mpy" in files
    assert "web/server.mpy" in files and not [f for f in files if f.startswith("lib/")]
    static = {p.relative_to(FIRMWARE).as_posix() for p in (FIRMWARE / "web" / "static").iterdir()}
    assert static <= set(files), "the live page's files are read from /rom/web/static"
    for f in files:  # what the device needs on its writable filesystem stays there
        assert f.split("/")[0] not in ("boot.py", "main.py", "boards", "config.json", "boot.mpy", "main.mpy")
    assert not any(f.endswith(".py") for f in files)


_LIST = """
import sys, os, vfs, hashlib, binascii
with open(sys.argv[1], "rb") as f:
    vfs.mount(vfs.VfsRom(f.read()), "/rom")
def walk(d, rel):
    for name, kind, *_ in sorted(os.ilistdir(d)):
        if kind == 0x4000:
            walk(d + "/" + name, rel + name + "/")
        else:
            with open(d + "/" + name, "rb") as f:
                data = f.read()
            print(rel + name, len(data), binascii.hexlify(hashlib.sha256(data).digest()).decode())
walk("/rom", "")
"""


def test_image_reads_back_under_micropython(build: Path, image: Path):
    """vfs.VfsRom sees every file of the image with its exact contents."""
    import hashlib

    got = _mp(_LIST, str(image)).split("\n")
    want = []
    for rel in romfs.image_files(build):
        data = (build / rel).read_bytes()
        want.append(f"{rel} {len(data)} {hashlib.sha256(data).hexdigest()}")
    assert [line for line in got if line] == want


def test_firmware_runs_from_romfs(image: Path, tmp_path: Path):
    """The host board app, its code only in the mounted image, serves readings."""
    meter = MeterServer()
    port, raw_port = free_port(), free_port()
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({
        "board": "host", "meter": {"source": meter.source},
        "http": {"port": port}, "raw_tcp": {"port": raw_port},
    }))  # fmt: skip
    # CODE_DIR does not exist: every module must come from /rom
    cmd = [_micropython(), "-X", "heapsize=512K", str(REPO / "tools" / "mp" / "unix_main.py"),
           str(tmp_path / "no-code-here"), str(cfg), str(tmp_path), "-q", "--romfs", str(image), "--stdin-stop"]  # fmt: skip
    err = open(tmp_path / "stderr", "wb")
    # Stopped as tools/run_host.py stops it: EOF on stdin (--stdin-stop). SIGINT's
    # KeyboardInterrupt lands in whichever task runs and the stop then hangs or crashes
    # the Unix port (about 1 run in 4 here: exit -9 after the wait, or -11).
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line.startswith(b"http://"):
            line = proc.stdout.readline()
            if not line:
                break
        assert line.strip() == f"http://127.0.0.1:{port}/".encode(), (
            f"did not start: {line!r}\n{(tmp_path / 'stderr').read_text()}"
        )
        meter.accept()
        meter.send(TELEGRAM.read_bytes())

        import http.client

        def get(path):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request("GET", path)
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()

        deadline = time.monotonic() + 20
        status, body = get("/api/v1/reading")
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            status, body = get("/api/v1/reading")
        assert status == 200, body
        reading = exact_json(body)
        assert reading["equipment_id"] == "4B384547303034303436333935353037"
        assert reading["energy_import_t1_kwh"] == "4.426"
        assert reading["power_import_kw"] == "0.244"

        status, page = get("/")
        assert status == 200
        assert page == (FIRMWARE / "web" / "static" / "index.html").read_bytes()
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        meter.close()
        err.close()
    assert proc.returncode == 0, (tmp_path / "stderr").read_text()


_HEAP = """
import gc, sys, vfs
mode, where = sys.argv[1], sys.argv[2]
if mode == "romfs":
    with open(where, "rb") as f:
        vfs.mount(vfs.VfsRom(f.read()), "/rom")
    where = "/rom"
sys.path[:0] = [where, where + "/lib"]
gc.collect()
base = gc.mem_alloc()
for m in sys.argv[3:]:
    __import__(m)
gc.collect()
print(gc.mem_alloc() - base)
"""


def code_heap(mode: str, where: Path) -> int:
    """Live heap (bytes, 64-bit Unix port) of MODULES imported from ROMFS or .mpy files."""
    return int(_mp(_HEAP, mode, str(where), *MODULES).split()[-1])


def test_code_heap_romfs_vs_mpy(build: Path, image: Path):
    from_mpy = code_heap("mpy", build)
    from_rom = code_heap("romfs", image)
    mpy_size = sum(p.stat().st_size for p in build.rglob("*.mpy"))
    print(
        f"\n   {BOARD}: .mpy total {mpy_size} B, ROMFS image {image.stat().st_size} B"
        f"\n   code in RAM after importing {len(MODULES)} modules (Unix port, 64-bit, gc.mem_alloc):"
        f"\n     from .mpy files {from_mpy} B, from ROMFS {from_rom} B ({from_rom / from_mpy:.0%});"
        f"\n     the image itself is one more heap block here, memory-mapped flash on the device"
    )
    assert from_rom < from_mpy


# --- make deploy-romfs: ask the board, refuse what cannot work ---------------------


def test_deploy_romfs_refuses_a_board_without_romfs(build: Path, image: Path, tmp_path: Path):
    """The Unix port, like the stock ESP32 images, has no vfs.rom_ioctl."""
    b = PtyBoard(_micropython(), tmp_path / "board-fs")
    try:
        (b.fs / "app.mpy").write_bytes(b"an earlier plain deploy")
        before = {p: p.read_bytes() for p in b.fs.rglob("*") if p.is_file()}
        r = subprocess.run(
            [sys.executable, str(REPO / "tools" / "deploy.py"), "--port", b.port, "--romfs", str(image), str(build)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        after = {p: p.read_bytes() for p in b.fs.rglob("*") if p.is_file()}
    finally:
        b.close()
    assert r.returncode == deploy.REFUSED, r.stdout + r.stderr
    assert "romfs query" in r.stdout and "romfs deploy" not in r.stdout
    assert "ROMFS is not enabled on this device" in r.stdout  # mpremote's own answer
    for words in ("refused, nothing was changed", "MICROPY_VFS_ROM", '"romfs" partition', "docs/DEVICE.md",
                  "make deploy BOARD="):  # fmt: skip
        assert words in r.stderr, r.stderr
    assert after == before


def _deploy(board: PtyBoard, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "deploy.py"), "--port", board.port, *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _snapshot(b: PtyBoard) -> tuple[dict[str, bytes], bytes]:
    files = {p.relative_to(b.fs).as_posix(): p.read_bytes() for p in sorted(b.fs.rglob("*")) if p.is_file()}
    return files, b.partition.read_bytes()


def test_deploy_romfs_onto_a_board_with_romfs(build: Path, image: Path, tmp_path: Path):
    """A MicroPython with ROMFS and a 256 KiB partition (tools/partitions.py's): the image
    goes into the partition, the filesystem keeps only what must be there, and after
    the reset the code is imported from /rom."""
    b = PtyBoard(_micropython(), tmp_path / "board-fs", romfs=partitions.TABLE[3][4])
    try:
        assert _deploy(b, str(build)).returncode == 0  # an earlier plain deploy
        r = _deploy(b, "--romfs", str(image), str(build))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ROMFS0 partition has size 262144 bytes" in r.stdout
        files, part = _snapshot(b)
        assert part[: image.stat().st_size] == image.read_bytes()
        assert set(files) == {"boot.py", "main.py", "boards/esp32-devkit.json", "machine.py"}
        probe = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", b.port, "exec",
             "import app, web.server, web.api; print(app.__file__, web.server.__file__, web.api.STATIC)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        b.close()
    assert probe.stdout.split() == ["/rom/app.mpy", "/rom/web/server.mpy", "/rom/web/static"], (
        probe.stdout + probe.stderr
    )


@pytest.mark.parametrize("size, words", [(64 * 1024, "the board's ROMFS partition 65536 bytes"),
                                         (0, 'no "romfs" partition')])  # fmt: skip
def test_deploy_romfs_refuses_a_missing_or_small_partition(build: Path, image: Path, tmp_path: Path, size, words):
    b = PtyBoard(_micropython(), tmp_path / "board-fs", romfs=size)
    try:
        before = _snapshot(b)
        r = _deploy(b, "--romfs", str(image), str(build))
        after = _snapshot(b)
    finally:
        b.close()
    assert r.returncode == deploy.REFUSED, r.stdout + r.stderr
    assert words in r.stderr and "nothing was changed" in r.stderr
    assert after == before


# mpremote 1.29's answers to `romfs query` (tools/mpremote/mpremote/commands.py)
@pytest.mark.parametrize(
    "answer, size, ok, words",
    [
        ("ROMFS is not enabled on this device\n", 1000, False, "MICROPY_VFS_ROM"),
        ("No ROMFS partitions available\n", 1000, False, 'no "romfs" partition'),
        ("mpremote: ROMFS0 partition not found on device\n", 1000, False, 'no "romfs" partition'),
        ("ROMFS0 partition has size 131072 bytes (32 blocks of 4096 bytes each)\n"
         "  Raw contents: ff:ff:ff ...\n  Not a valid ROMFS\n", 200000, False, "200000 bytes, the board's ROMFS partition 131072"),
        ("ROMFS0 partition has size 262144 bytes (64 blocks of 4096 bytes each)\n", 88794, True, "262144"),
        ("could not enter raw repl\n", 1000, False, "cannot read"),
    ],
)  # fmt: skip
def test_romfs_verdict(answer: str, size: int, ok: bool, words: str):
    got_ok, message = deploy.romfs_verdict(answer, size)
    assert got_ok is ok
    assert words in message


def test_deploy_romfs_dry_run(build: Path, image: Path):
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "deploy.py"), "--port", "/dev/ttyUSB9", "--dry-run",
         "--romfs", str(image), str(build)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if "mpremote" in line]
    assert lines[0].endswith("connect /dev/ttyUSB9 romfs query")
    assert lines[1].endswith(f"romfs deploy {image.resolve()}")
    assert "exec '<" in lines[2] and "fs cp -r boot.py main.py boards : + reset" in lines[2]
    assert "app.mpy" in deploy.stale_paths(build) and "web" in deploy.stale_paths(build)
    assert not {"boards", "boot.py", "main.py", "config.json", "lib"} & set(deploy.stale_paths(build))


# --- the partition table of a MicroPython image with ROMFS --------------------------

# MicroPython's own 4 MiB table (ports/esp32/partitions-4MiBplus.csv, v1.26..master): the
# stock app partition, which every stock image fits.
STOCK_FACTORY = (0x10000, 0x1F0000)


def _read_table(data: bytes) -> list[tuple[str, int, int, int, int, int]]:
    """ESP-IDF's binary partition table -> [(label, type, subtype, offset, size, flags)]."""
    assert len(data) == 0xC00
    entries, md5 = [], hashlib.md5()
    for at in range(0, len(data), 32):
        raw = data[at : at + 32]
        if raw == b"\xff" * 32:
            break
        if raw[:2] == b"\xeb\xeb":
            assert raw[2:16] == b"\xff" * 14 and raw[16:] == md5.digest(), "MD5 entry"
            continue
        magic, ptype, sub, offset, size, label, flags = struct.unpack("<2sBBII16sI", raw)
        assert magic == b"\xaa\x50"
        md5.update(raw)
        entries.append((label.rstrip(b"\0").decode(), ptype, sub, offset, size, flags))
    else:
        raise AssertionError("no end of table")
    assert data[at:] == b"\xff" * (len(data) - at)
    return entries


def test_partition_table_reads_back(image: Path, tmp_path: Path):
    out = tmp_path / "partitions.bin"
    assert partitions.main(["--bin", str(out), "--csv", str(tmp_path / "p.csv")]) == 0
    table = _read_table(out.read_bytes())
    assert [e[:5] for e in table] == list(partitions.TABLE)
    by_label = {e[0]: e for e in table}
    assert list(by_label) == ["nvs", "phy_init", "factory", "romfs", "vfs"]
    end = 0x8000 + 0x1000  # the table's own sector
    for label, ptype, sub, offset, size, flags in table:
        assert flags == 0
        assert offset == end, f"{label}: gap or overlap at 0x{offset:x}"
        assert offset % (0x10000 if ptype == 0 else 0x1000) == 0, f"{label}: offset not aligned"
        assert size % 0x1000 == 0, f"{label}: size not a multiple of a flash sector"
        end = offset + size
    assert end == partitions.FLASH_SIZE == 4 * 1024 * 1024, "the table fills 4 MiB of flash exactly"
    assert by_label["factory"][1:5] == (0, 0x00, *STOCK_FACTORY), "the app partition is the stock one"
    romfs_part = by_label["romfs"]
    assert romfs_part[1] == 1 and romfs_part[3] % 0x10000 == 0, "a data partition on a 64 KiB MMU page"
    assert image.stat().st_size <= romfs_part[4], "the image fits the romfs partition"
    assert by_label["vfs"][1:3] == (1, 0x81) and by_label["vfs"][4] >= 0x100000
    assert by_label["nvs"][1:3] == (1, 0x02) and by_label["phy_init"][1:3] == (1, 0x01)
    print(
        f"\n   romfs partition {romfs_part[4]} bytes, image {image.stat().st_size} bytes "
        f"({image.stat().st_size / romfs_part[4]:.0%} used); filesystem {by_label['vfs'][4] // 1024} KiB"
    )


def test_partition_csv_matches_docs():
    """docs/DEVICE.md shows the CSV the tool writes."""
    doc = "\n".join(line.strip() for line in (REPO / "docs" / "DEVICE.md").read_text().splitlines())
    assert partitions.csv_text() in doc
