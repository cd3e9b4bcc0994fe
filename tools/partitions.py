#!/usr/bin/env python3
"""The partition table of a MicroPython image with ROMFS, for 4 MiB of flash.

A stock ESP32 image cannot use ROMFS (docs/DEVICE.md): it takes a MicroPython
built with MICROPY_VFS_ROM=1 and a partition table with a data partition
labelled "romfs", which MicroPython memory-maps and mounts at /rom at start-up
(ports/esp32/esp32_partition.c). This is that table:

- nvs, phy_init and the factory app exactly as in MicroPython's own
  partitions-4MiBplus.csv (v1.26 and later), so whatever fits the stock app
  partition fits here too;
- romfs: 256 KiB after the app, on a 64 KiB boundary (one flash MMU page),
  room for the image (`make deploy-romfs` refuses one that does not fit);
- vfs: the rest of the flash for the writable filesystem (config, spool),
  explicit so that MicroPython 1.25 (which does not add one at start-up) works too.

The same table serves every chip here (ESP32, -S2, -S3, -C3): the table lives at
0x8000 on all of them; only the bootloader's offset differs.

    python tools/partitions.py [--csv FILE] [--bin FILE]

--csv writes the CSV for ESP-IDF (CONFIG_PARTITION_TABLE_CUSTOM_FILENAME), --bin
the binary table that ESP-IDF's gen_esp32part.py would make from it (flashed at
0x8000); without options the CSV goes to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from pathlib import Path

FLASH_SIZE = 0x400000  # 4 MiB: every board in boards/
TABLE_OFFSET = 0x8000  # ESP-IDF's CONFIG_PARTITION_TABLE_OFFSET default
TABLE_MAX = 0xC00  # ESP-IDF: table + MD5 entry, padded with 0xFF
APP, DATA = 0x00, 0x01
TYPE_NAMES = {APP: "app", DATA: "data"}
SUBTYPE_NAMES = {(APP, 0x00): "factory", (DATA, 0x01): "phy", (DATA, 0x02): "nvs", (DATA, 0x81): "fat"}
ROMFS_SUBTYPE = 0x8F  # as in MicroPython's partitions-4MiB-romfs.csv; found by its label

# (label, type, subtype, offset, size)
TABLE = (
    ("nvs", DATA, 0x02, 0x9000, 0x6000),
    ("phy_init", DATA, 0x01, 0xF000, 0x1000),
    ("factory", APP, 0x00, 0x10000, 0x1F0000),
    ("romfs", DATA, ROMFS_SUBTYPE, 0x200000, 0x40000),
    ("vfs", DATA, 0x81, 0x240000, 0x1C0000),
)

_ENTRY = struct.Struct("<2sBBII16sI")  # gen_esp32part.py's layout: 32 bytes
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14


def csv_text() -> str:
    rows = [
        "# MicroPython with ROMFS for the P1 dongle, 4 MiB flash (tools/partitions.py)",
        "# Name,   Type, SubType, Offset,   Size,     Flags",
    ]
    for label, ptype, sub, offset, size in TABLE:
        subname = SUBTYPE_NAMES.get((ptype, sub), "0x%x" % sub)
        rows.append(
            f"{label},".ljust(10)
            + f"{TYPE_NAMES[ptype]},".ljust(6)
            + f"{subname},".ljust(9)
            + f"0x{offset:x},".ljust(10)
            + f"0x{size:x},"
        )
    return "\n".join(rows) + "\n"


def binary() -> bytes:
    """The table as ESP-IDF stores it: 32-byte entries, an MD5 entry, 0xFF up to 0xC00."""
    body = b"".join(
        _ENTRY.pack(_MAGIC, ptype, sub, offset, size, label.encode(), 0) for label, ptype, sub, offset, size in TABLE
    )
    out = body + _MD5_MAGIC + hashlib.md5(body).digest()
    return out + b"\xff" * (TABLE_MAX - len(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", help="write the CSV here")
    ap.add_argument("--bin", help="write the binary table here")
    args = ap.parse_args(argv)
    if args.csv:
        Path(args.csv).write_text(csv_text())
    if args.bin:
        Path(args.bin).write_bytes(binary())
    if not (args.csv or args.bin):
        sys.stdout.write(csv_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
