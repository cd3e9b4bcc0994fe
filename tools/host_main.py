#!/usr/bin/env python3
"""The firmware on the host board under CPython from an installed copy, as a
device runs it (`p1tool.py run --ota DIR` starts it, and again after each reset):

    python tools/host_main.py ROOT CONFIG STORAGE_DIR [-q]

Like the device's boot.py, it first lets otaboot finish a staged update or a
rollback (ROOT/app, ROOT/prev, ROOT/stage, ROOT/update.json: docs/UPDATE.md),
then imports the firmware from ROOT/app only, never from the checkout. The
firmware's reset ends the process with run_host.RESET_EXIT.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import run_host  # (puts the checkout's firmware/ on sys.path: taken off again below)

root, config_path = sys.argv[1], sys.argv[2]
app_dir = str(Path(root) / "app")
sys.path[:] = [p for p in sys.path if p != str(run_host.ROOT / "firmware")]
sys.path.insert(0, app_dir)
try:
    import otaboot

    print("boot: update:", otaboot.boot(root + "/"), file=sys.stderr, flush=True)
except Exception as e:  # noqa: BLE001 - the app runs anyway; its status shows the state
    print("boot: update:", repr(e), file=sys.stderr, flush=True)
for name, mod in list(sys.modules.items()):  # (the folder may have been switched under them)
    if (getattr(mod, "__file__", None) or "").startswith(str(Path(root).resolve())) or name in ("otaboot", "fsutil"):
        del sys.modules[name]
importlib.invalidate_caches()

import config  # noqa: E402 - from ROOT/app
import log  # noqa: E402

log.quiet = "-q" in sys.argv[4:]
cfg, errors = config.load(config_path)
for e in errors:
    print(e, file=sys.stderr)
sys.exit(asyncio.run(run_host.serve(cfg, errors, config_path, ota_root=str(Path(root).resolve()) + "/")))
