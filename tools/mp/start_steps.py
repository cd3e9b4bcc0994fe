# Where the live heap goes while the firmware starts: steps for heap_steps.py.
# ruff: noqa: E402, F401 - a steps file: each part imports what it measures
#
#     python3 -c "import sys; sys.path.insert(0, 'tools'); import run_host; run_host.build_unix()"
#     cd build/unix && ../../.venv/bin/micropython -X heapsize=4M \
#         ../../tools/mp/heap_steps.py "" ../../tools/mp/start_steps.py
#
# Run in the code directory with "" on the path, as the firmware runs there (module
# paths as short as on the device). The host board, the meter a recorded DSMR 5
# telegram (host_tests/telegrams), HTTP and the raw port on loopback, no MQTT
# (its figures need a broker: docs/MEMORY.md). Each step's line is "LABEL added
# live" in bytes of the 64-bit Unix port's heap, after a collection.
#--- names
import sys

root = sys.argv[2].rsplit("/tools/", 1)[0]
import warmup

warmup.run()
from mem import unload

unload("warmup")
#--- asyncio
import asyncio
#--- code_resident
import app as appmod
import board
import log

log.quiet = True
#--- config
import config

open("/tmp/p1_start_steps.json", "w").write(
    '{"meter": {"source": "%s/host_tests/telegrams/nl-dsmr5-iskra-01.txt"}, "http": {"port": 18380},'
    ' "raw_tcp": {"port": 18323}}' % root
)
cfg, errors = config.load("/tmp/p1_start_steps.json")
del config
unload("config", "fsutil")
#--- board
b = board.load("host")
b.storage_dir = "/tmp"
#--- App
the_app = appmod.App(cfg, errors, b)
#--- code_http_raw
import net.tcp_raw
import web.api
#--- code_bodyrare
import p1.bodyrare
#--- appstart
import aio
import appstart

aio.guard_poller()
b.power_setup()
b.record_boot()
appstart._start_loads(the_app)
#--- tasks
the_app._task(the_app._meter, "meter")
the_app._task(the_app._supervise, "supervisor")


async def _run(ms):
    await asyncio.sleep_ms(ms)


asyncio.run(_run(1000))
#--- make_server
the_app.web = web.api.make_server(the_app)
#--- http_listen
asyncio.run(the_app.web.start("127.0.0.1", 18380))
#--- raw_listen
asyncio.run(appstart._start_raw(the_app))
#--- appstart_gone
del appstart
unload("appstart", "fsutil")
asyncio.run(_run(500))
