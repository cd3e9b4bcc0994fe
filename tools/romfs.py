#!/usr/bin/env python3
"""The ROMFS image of a device build (`make deploy-romfs`): the .mpy files that
MicroPython can run in place from flash instead of copying them into RAM.

    python tools/romfs.py BUILD_DIR [-o IMAGE]     (default IMAGE: BUILD_DIR.romfs)

BUILD_DIR is a build of tools/build_device.py. The image holds its modules and
data files (`app.mpy`, `p1/`, `net/`, `web/` with `web/static/`, `lib/microdot/`),
mounted on the device at /rom, where /rom and /rom/lib are on sys.path. What
the device must find on its writable filesystem stays out (ON_FILESYSTEM:
boot.py and main.py, which MicroPython runs only from there, the board file
and config.json), and so do boot.mpy/main.mpy, which nothing imports.

The image is written by mpremote's own ROMFS writer (`mpremote romfs build`
uses the same class), so it is byte for byte what mpremote would deploy.
It needs a MicroPython built with MICROPY_VFS_ROM and a "romfs" partition:
the stock ESP32 images have neither (docs/DEVICE.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Left on the writable filesystem (tools/deploy.py copies them there).
ON_FILESYSTEM = ("boot.py", "main.py", "boards", "config.json")
# In the build but of no use in the image.
LEFT_OUT = ("boot.mpy", "main.mpy", ".p1-device-build")


def writer_class():
    """mpremote's VfsRomWriter (PyPI mpremote, pinned in requirements-dev.txt)."""
    try:
        from mpremote.romfs import VfsRomWriter
    except ImportError:
        sys.exit("romfs: mpremote is not installed in this interpreter; run `make setup`")
    return VfsRomWriter


def image_files(build_dir: Path) -> list[str]:
    """The files of `build_dir` that go into the image (posix paths, sorted)."""
    out = []
    for p in sorted(build_dir.rglob("*")):
        rel = p.relative_to(build_dir)
        if p.is_file() and rel.parts[0] not in ON_FILESYSTEM + LEFT_OUT and "__pycache__" not in rel.parts:
            out.append(rel.as_posix())
    return out


def make_image(build_dir: Path) -> bytes:
    """The ROMFS image of a device build (see module doc)."""
    build_dir = Path(build_dir)
    if not (build_dir / "app.mpy").is_file():
        sys.exit(f"romfs: {build_dir} is not a device build (no app.mpy); run `make build`")
    w = writer_class()()
    files = set(image_files(build_dir))

    def add_dir(d: Path) -> None:
        for p in sorted(d.iterdir(), key=lambda p: p.name):
            rel = p.relative_to(build_dir).as_posix()
            if p.is_dir():
                if any(f.startswith(rel + "/") for f in files):
                    w.opendir(p.name)
                    add_dir(p)
                    w.closedir()
            elif rel in files:
                w.mkfile(p.name, p.read_bytes())

    add_dir(build_dir)
    return w.finalise()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", help="a device build (tools/build_device.py)")
    ap.add_argument("-o", "--output", help="image file (default BUILD_DIR.romfs)")
    args = ap.parse_args(argv)
    build_dir = Path(args.build_dir).resolve()
    out = Path(args.output) if args.output else build_dir.with_name(build_dir.name + ".romfs")
    image = make_image(build_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(image)
    n = len(image_files(build_dir))
    print(f"romfs: {out}: {len(image)} bytes, {n} files from {build_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
