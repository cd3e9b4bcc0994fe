"""Runs before main.py: nothing that can fail. Radio and CPU clock are set by
the app from the board file (power-safe start), so only the paths here, and an
update's switch: code installed from a bundle (`make deploy`, OTA) is in /app;
a staged update is switched to, or a failed one rolled back, before any of it
is imported (otaboot, docs/UPDATE.md)."""

import sys


def _boot():
    import os

    try:
        os.stat("/app")
    except OSError:
        return  # a flat deploy (ROMFS, frozen, older): the code is at / and /lib
    sys.path[:0] = ["/app", "/app/lib"]
    try:
        os.stat("/update.json")
    except OSError:
        try:
            os.stat("/update.json.bak")  # (a power cut in the middle of its write)
        except OSError:
            return
    try:
        import otaboot

        os.chdir("/")  # paths relative to / (the Unix port's VfsPosix renames absolute ones wrongly: the tests)
        print("boot: update:", otaboot.boot(""))
    except Exception as e:  # noqa: BLE001 - the app runs anyway; its status shows the state
        print("boot: update:", repr(e))
    for n in ("otaboot", "fsutil"):  # (from the folder before the switch)
        sys.modules.pop(n, None)


_boot()
del _boot
if "/lib" not in sys.path:
    sys.path.append("/lib")
