"""The firmware's host board under MicroPython's Unix port (`make run MP=1`).

    micropython -X heapsize=160K tools/mp/unix_main.py CODE_DIR CONFIG STORAGE_DIR [-q] [--romfs IMAGE] [--mem S]
                                                        [--ota ROOT] [--stdin-stop]

CODE_DIR is a device build (`tools/build_device.py`: the .mpy files as they go
onto the board, microdot in CODE_DIR/lib). With --romfs the code comes from a
ROMFS image (`tools/romfs.py`) mounted at /rom instead, as on a device with a
romfs partition; here the image is one block in the heap (on the device it is
memory-mapped flash). Prints `http://127.0.0.1:PORT/`
once the servers listen, like `p1tool.py run` on CPython. With --stdin-stop
(how tools/run_host.py runs it) EOF on stdin stops the app cleanly (MQTT says
offline) and it exits 0; a start failure exits 1. SIGINT (Ctrl-C when run by
hand) stops it too, less surely: the KeyboardInterrupt lands in whatever runs.
With --mem S it prints `micropython.mem_info()` (after a collection) every S
seconds: the memory budget test reads the free heap and the largest free block.
As on the device (app.main), the config module leaves RAM after loading.
With --ota ROOT the code is ROOT/app, after otaboot finished a staged update
or a rollback there (docs/UPDATE.md), and the firmware's reset ends the
process with exit code 75 (tools/run_host.py starts it again).

The work is in hostmain.py, compiled into CODE_DIR by tools/run_host.py like
the firmware (its source would be compiled in RAM here, costing ~4 KB of heap
the device's tiny main.py does not).
"""

import sys

code, config_path, storage = sys.argv[1], sys.argv[2], sys.argv[3]
if "--ota" in sys.argv[4:]:  # the code installed in ROOT/app (`p1tool.py run --ota`): as the device's boot.py
    root = sys.argv[sys.argv.index("--ota") + 1]
    code = root + "/app"
    sys.path.insert(0, code)
    try:
        import otaboot

        print("boot: update:", otaboot.boot(root + "/"))
    except Exception as e:  # noqa: BLE001 - the app runs anyway; its status shows the state
        print("boot: update:", repr(e))
    for n in ("otaboot", "fsutil"):  # (from the folder before the switch)
        sys.modules.pop(n, None)
    sys.path.pop(0)
if "--romfs" in sys.argv[4:]:
    import vfs

    with open(sys.argv[sys.argv.index("--romfs") + 1], "rb") as f:
        vfs.mount(vfs.VfsRom(f.read()), "/rom")
    code = "/rom"
    sys.path[:0] = [code, code + "/lib"]
else:  # run in CODE_DIR: module paths as short as on the device ("net/mqtt.mpy", not /work/...)
    import os

    os.chdir(code)
    sys.path[:0] = ["", "lib"]

try:
    import hostmain  # noqa: E402,F401 - runs the firmware
except ImportError:  # not in CODE_DIR (a ROMFS image of a plain device build): from source
    sys.path.append(sys.argv[0].rsplit("/", 1)[0])
    import hostmain  # noqa: E402,F401
