"""The firmware's host board under MicroPython's Unix port (`make run MP=1`).

    micropython -X heapsize=160K tools/mp/unix_main.py CODE_DIR CONFIG STORAGE_DIR [-q] [--romfs IMAGE] [--mem S]

CODE_DIR is a device build (`tools/build_device.py`: the .mpy files as they go
onto the board, microdot in CODE_DIR/lib). With --romfs the code comes from a
ROMFS image (`tools/romfs.py`) mounted at /rom instead, as on a device with a
romfs partition; here the image is one block in the heap (on the device it is
memory-mapped flash). Prints `http://127.0.0.1:PORT/`
once the servers listen, like `p1tool.py run` on CPython. SIGINT (Ctrl-C)
stops the app cleanly (MQTT says offline) and exits 0; a start failure exits 1.
With --mem S it prints `micropython.mem_info()` (after a collection) every S
seconds: the memory budget test reads the free heap and the largest free block.
As on the device (app.main), the config module leaves RAM after loading.
"""

import sys

code, config_path, storage = sys.argv[1], sys.argv[2], sys.argv[3]
if "--romfs" in sys.argv[4:]:
    import vfs

    with open(sys.argv[sys.argv.index("--romfs") + 1], "rb") as f:
        vfs.mount(vfs.VfsRom(f.read()), "/rom")
    code = "/rom"
sys.path[:0] = [code, code + "/lib"]

import asyncio  # noqa: E402

import app as appmod  # noqa: E402
import board  # noqa: E402
import log  # noqa: E402
from mem import unload  # noqa: E402

if "-q" in sys.argv[4:]:
    log.quiet = True
mem_every = int(sys.argv[sys.argv.index("--mem") + 1]) if "--mem" in sys.argv[4:] else 0

import config  # noqa: E402

cfg, errors = config.load(config_path)
del config
unload("config")
for e in errors:
    print(e)
b = board.load("host")
b.storage_dir = storage
the_app = appmod.App(cfg, errors, b)


async def main():
    try:
        await the_app.start()
    except OSError as e:
        log.error("cannot start: %s" % e)
        await the_app.stop()
        return 1
    print("http://127.0.0.1:%d/" % cfg["http"]["port"])
    the_app._task(the_app._heap_report, "heap")
    if mem_every:
        the_app._task(mem_report, "mem")
    await the_app.wait()
    return 0


async def mem_report():
    import gc

    import micropython

    while True:
        gc.collect()
        micropython.mem_info()
        await asyncio.sleep(mem_every)


rc = 0
try:
    rc = asyncio.run(main())
except KeyboardInterrupt:
    asyncio.run(the_app.stop())
    print("stopped")
sys.exit(rc or 0)
