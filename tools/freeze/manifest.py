# ruff: noqa: F821 - include/module/package are given by MicroPython's tools/manifestfile.py
# Frozen-module manifest: the dongle's firmware compiled into a MicroPython image
# of your own, so that its bytecode and strings stay in flash (docs/DEVICE.md,
# "Freezing"). In MicroPython's source tree, with ESP-IDF set up:
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/repo/tools/freeze/manifest.py
#
# then `make flash FIRMWARE=.../build-ESP32_GENERIC/firmware.bin` and
# `make deploy-frozen BOARD=...` for the files that stay on the filesystem.
#
# MicroPython's tools/manifestfile.py runs this file with its folder as the
# current directory: the relative paths below start at tools/freeze/.
import glob
import os

# The port's own frozen modules first (_boot, inisetup, flashbdev, asyncio, ...):
# FROZEN_MANIFEST replaces the board's manifest, it does not add to it.
include("$(PORT_DIR)/boards/manifest.py")

FIRMWARE = "../../firmware"

# Top-level modules. Not boot.py and main.py: MicroPython runs frozen ones in
# place of the filesystem's, and a frozen main.py could not be replaced without
# reflashing; they stay on the filesystem (make deploy-frozen). Not boards_host.py
# and hostserial.py either: the host board's code (CPython, the Unix port), never
# used on a device.
for path in sorted(glob.glob(FIRMWARE + "/*.py")):
    name = os.path.basename(path)
    if name not in ("boot.py", "main.py", "boards_host.py", "hostserial.py"):
        module(name, base_path=FIRMWARE)

# Packages: every .py below them. web/static/ is not Python: frozen, web/api.py
# looks for it at web/static on the filesystem (make deploy-frozen puts it there).
package("p1", base_path=FIRMWARE)
package("net", base_path=FIRMWARE)
package("web", base_path=FIRMWARE)
