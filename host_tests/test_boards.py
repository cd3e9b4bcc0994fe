"""Every boards/*.json against a schema, its chip's GPIO map and the P1 port's
power budget; the loader never raises."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "firmware"))

import board  # noqa: E402
import boardfile  # noqa: E402

BOARD_FILES = sorted((REPO / "boards").glob("*.json"))
REQUIRED = {"esp32-devkit", "esp32-c3-supermini", "esp32-s2-mini", "esp32-s3-mini", "host"}


def _r(*ranges):
    out = set()
    for r in ranges:
        out |= set(r)
    return out


# chip -> (usable GPIOs, input-only GPIOs, UART ids usable for the meter, CPU MHz)
# Flash/PSRAM pins are left out: ESP32 6-11, C3 11-17 (+ USB 18/19),
# S2/S3 26-32. Pins that do not exist are left out too (ESP32 20, 24, 28-31).
CHIPS = {
    "esp32": (_r(range(0, 6), range(12, 20), range(21, 24), range(25, 28), range(32, 40)),
              set(range(34, 40)), {1, 2}, {80, 160, 240}),
    "esp32c3": (_r(range(0, 11), range(20, 22)), set(), {1}, {80, 160}),
    "esp32s2": (_r(range(0, 22), range(33, 47)), {46}, {1}, {80, 160, 240}),
    "esp32s3": (_r(range(0, 22), range(33, 49)), set(), {1, 2}, {80, 160, 240}),
}  # fmt: skip

UART_KEYS = {"id": int, "rx": (int, type(None)), "rx_invert": bool, "rxbuf": int,
             "baud": int, "bits": int, "parity": (int, type(None)), "stop": int}  # fmt: skip
TOP = {
    "name": str, "chip": str, "description": str, "uart": dict, "uart_alternatives": dict,
    "data_request": (int, type(None)), "led": (dict, type(None)), "relays": list,
    "cpu_mhz": (int, type(None)), "wifi_txpower_dbm": (int, float, type(None)),
    "start_delay_ms": int, "watchdog_s": int, "storage_dir": str, "power_notes": str,
}  # fmt: skip


def test_all_required_boards_present():
    assert REQUIRED <= {p.stem for p in BOARD_FILES}


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.stem)
def test_board_file(path: Path):
    spec = json.loads(path.read_text())
    assert set(spec) == set(TOP), f"keys differ: {set(spec) ^ set(TOP)}"
    for k, t in TOP.items():
        assert isinstance(spec[k], t) and not isinstance(spec[k], bool) or t is bool, k
    assert spec["name"] == path.stem
    u = spec["uart"]
    assert set(u) == set(UART_KEYS)
    for k, t in UART_KEYS.items():
        assert isinstance(u[k], t), f"uart.{k}"
    assert (u["baud"], u["bits"], u["parity"], u["stop"]) == (115200, 8, None, 1)
    alt = spec["uart_alternatives"]["dsmr22"]
    assert (alt["baud"], alt["bits"], alt["parity"], alt["stop"]) == (9600, 7, 0, 1)
    assert u["rxbuf"] >= 3072  # a whole telegram fits
    if spec["chip"] == "host":
        assert spec["data_request"] is None and spec["relays"] == ([] if spec["name"] == "host" else [1, 2, 3, 4])
        return
    gpios, input_only, uarts, clocks = CHIPS[spec["chip"]]
    assert u["rx_invert"] is True  # the P1 DATA line is inverted
    assert u["id"] in uarts, "UART0 is the console"
    outputs = [spec["data_request"], *spec["relays"]]
    if spec["led"] is not None:
        assert set(spec["led"]) <= {"pin", "active_low", "kind"}
        assert isinstance(spec["led"]["active_low"], bool)
        outputs.append(spec["led"]["pin"])
    assert u["rx"] in gpios, f"rx GPIO{u['rx']} not usable on {spec['chip']}"
    for p in outputs:
        assert p in gpios and p not in input_only, f"GPIO{p} cannot drive an output"
    pins = [u["rx"], *outputs]
    assert len(pins) == len(set(pins)), "a pin is used twice"
    # the 250 mA budget: lowered clock and TX power
    assert spec["cpu_mhz"] in clocks and spec["cpu_mhz"] <= 160
    assert 2 <= spec["wifi_txpower_dbm"] <= 13
    assert spec["start_delay_ms"] >= 500
    assert spec["storage_dir"].startswith("/")


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.stem)
def test_loader_reads_each_without_errors(path: Path):
    spec, errors = boardfile.read_spec(path.stem, [str(path.parent)])
    assert errors == [] and spec["name"] == path.stem


def test_loader_never_raises(tmp_path):
    (tmp_path / "broken.json").write_text("{nope")
    (tmp_path / "partial.json").write_text('{"name": "partial", "chip": "esp32"}')
    spec, errors = boardfile.read_spec("broken", [str(tmp_path)])
    assert spec["uart"]["baud"] == 115200 and errors
    spec, errors = boardfile.read_spec("partial", [str(tmp_path)])
    assert spec["uart"] == boardfile.FALLBACK["uart"] and any("lacks" in e for e in errors)
    spec, errors = boardfile.read_spec("../x", [str(tmp_path)])
    assert errors
    b = board.load("esp32-devkit")  # no `machine` here: runs as host, says so
    assert b.name == "esp32-devkit" and any("needs machine" in e for e in b.errors)


def test_host_board_boot_count(tmp_path):
    b = board.load("host")
    b.storage_dir = str(tmp_path)
    assert b.record_boot() == 1
    assert b.record_boot() == 2
    (tmp_path / "bootinfo.json").write_text("garbage")
    assert b.record_boot() == 1
    assert b.reset_cause() == "host"


def test_host_board_reads_a_pty_like_a_usb_p1_cable():
    """A serial device (here a pty, raw mode and 115200 8N1 set on it) as the meter source."""
    import asyncio
    import os
    import pty

    from hub import Hub
    from meter import Pipeline
    from meter import run as run_meter

    tel = (Path(__file__).parent / "telegrams" / "se-lg-e360-01.txt").read_bytes()
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    b = board.load("host")
    hub = Hub()
    pipe = Pipeline(hub)

    async def main():
        task = asyncio.create_task(run_meter(b, pipe, path))
        await asyncio.sleep(0.1)
        os.write(master, tel[:300])
        await asyncio.sleep(0.05)
        os.write(master, tel[300:])
        for _ in range(200):
            if hub.seq:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    try:
        asyncio.run(main())
    finally:
        os.close(master)
        os.close(slave)
    assert hub.seq == 1 and hub.sample.raw == tel and pipe.source == path


def test_host_board_reads_a_pty_under_micropython(tmp_path):
    """The same under MicroPython's Unix port (make run MP=1 SOURCE=/dev/ttyUSB0)."""
    import os
    import pty

    from runtime_harness import Firmware

    tel = (Path(__file__).parent / "telegrams" / "se-lg-e360-01.txt").read_bytes()
    master, slave = pty.openpty()
    fw = Firmware(tmp_path, "--mp", "--heap", "512K", "--source", os.ttyname(slave))
    try:
        os.write(master, tel[:300])
        os.write(master, tel[300:])
        fw.wait(lambda: fw.get("/api/v1/telegram")[0] == 200, what="the telegram read from the pty")
        assert fw.get("/api/v1/telegram")[2] == tel
    finally:
        fw.stop()
        os.close(master)
        os.close(slave)


def _run_meter(parts, failed_opens=0):
    """meter.run over a fake source that returns `parts` (MemoryError: raised instead)
    on a board whose first `failed_opens` opens raise MemoryError; returns
    (hub, pipeline, log.memory_errors added, opens, closes)."""
    import asyncio

    import log
    from hub import Hub
    from meter import Pipeline
    from meter import run as run_meter

    n = {"opened": 0, "closed": 0}

    class Source:
        reconnect = False

        async def read(self, _n):
            p = parts.pop(0)
            if p is MemoryError:
                raise MemoryError("memory allocation failed, allocating 513 bytes")
            return p

        def close(self):
            n["closed"] += 1

    class B:
        def data_request(self, on):
            pass

        def open_meter(self, source):
            n["opened"] += 1
            if n["opened"] <= failed_opens:
                raise MemoryError("memory allocation failed, allocating 4096 bytes")
            return Source()

    hub = Hub()
    pipe = Pipeline(hub)
    before = log.memory_errors
    asyncio.run(asyncio.wait_for(run_meter(B(), pipe, "fake"), 5))
    return hub, pipe, log.memory_errors - before, n["opened"], n["closed"]


def test_a_read_that_runs_out_of_memory_is_counted_and_the_source_kept():
    """No room for a read's buffer: counted (meter memory_errors, log), the same
    source read again after a moment (not closed and reopened), no byte lost."""
    tel = (Path(__file__).parent / "telegrams" / "se-lg-e360-01.txt").read_bytes()
    hub, pipe, logged, opened, closed = _run_meter([MemoryError, tel[:300], MemoryError, tel[300:], b""])
    assert hub.seq == 1 and hub.sample.raw == tel
    assert pipe.memory_errors == 2 and logged == 2
    assert opened == 1 and closed == 1 and pipe.reopens == 0


def test_opening_the_source_without_memory_is_counted_and_tried_again():
    """A MemoryError while opening the source (a connection and its buffers) is a
    memory error like any other: counted, so that a heap that stays short leads to
    the reset (app.py), and the source opened again after the backoff."""
    tel = (Path(__file__).parent / "telegrams" / "se-lg-e360-01.txt").read_bytes()
    hub, pipe, logged, opened, closed = _run_meter([tel, b""], failed_opens=1)
    assert hub.seq == 1 and hub.sample.raw == tel
    assert pipe.memory_errors == 1 and logged == 1
    assert opened == 2 and pipe.reopens == 1 and pipe.last_error == "source: MemoryError"
