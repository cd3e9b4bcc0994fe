"""Device entry point: start the app with the board named in /config.json.

A crash at start-up is logged and followed by a delayed reset, never a tight
boot loop; Ctrl-C on the console stops it and leaves the REPL.
"""

import asyncio

import log


def run():
    import warmup

    warmup.run()  # names of the code loaded now and then, interned while the heap is in one piece
    del warmup
    import mem

    mem.unload("warmup")
    import app

    try:
        asyncio.run(app.main("/config.json"))
    except KeyboardInterrupt:
        log.info("stopped")
        return
    except Exception as e:  # noqa: BLE001 - last resort: log, wait, reset
        log.exc(e, "main")
    import time

    time.sleep(10)  # keep a reset loop slow and the console usable
    import machine

    machine.reset()


run()
