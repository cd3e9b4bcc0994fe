"""The device code (`espboard.EspBoard`, `net/wifi.py`) under real MicroPython.

Each test runs a script under MicroPython's Unix port (`.venv/bin/micropython`,
real asyncio, real sockets) with host_tests/fakes/ first on sys.path: fake
`machine` and `network` modules that follow the ESP32 port's own sources (see
their docstrings), and micropython-lib's real `neopixel` driver. The Unix
port's built-in `machine` (no UART) is shadowed by the fake; every script
checks that it was.

- every ESP board file: UART opened with the board's settings and
  invert=UART.INV_RX, meter bytes through the UART's asyncio stream (and on
  through meter.run into the hub), DATA REQUEST, LED (active-low, WS2812),
  relays, watchdog, CPU clock, reset cause names, MAC;
- the host board still loads under the Unix port, with and without the fakes;
- Wi-Fi: join, wrong password / no AP with backoff and the fallback access
  point, rejoin after a drop, hostname and TX power, status(), and a task
  that survives every fault the fakes can inject.

Wi-Fi time is a fake clock: the scripts replace `asyncio.sleep_ms` (which
net/wifi.py calls through the module) by one that records the delay, yields
and then moves the fake network's clock on by it, so twenty-second joins and
two-minute backoffs take milliseconds and the delays can be asserted exactly.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import FIRMWARE, HOST_TESTS, REPO, TELEGRAMS_DIR, VENV_BIN, describe

MICROPYTHON = VENV_BIN / "micropython"
FAKES = HOST_TESTS / "fakes"
BOARDS = REPO / "boards"
ESP_BOARDS = sorted(p for p in BOARDS.glob("*.json") if json.loads(p.read_text())["chip"] != "host")
TELEGRAM = TELEGRAMS_DIR / "nl-dsmr5-iskra-01.txt"

PRELUDE = f"""
import sys
sys.path[:0] = [{str(FAKES)!r}, {str(FIRMWARE)!r}]
import json
import machine
import network
if not hasattr(machine, "_set_chip") or not hasattr(network, "_aps"):
    raise SystemExit("the fakes did not shadow the Unix port's own modules")


def result(out):
    print("RESULT " + json.dumps(out))
"""

NO_FAKES = f"""
import sys
sys.path[:0] = [{str(FIRMWARE)!r}]
import json


def result(out):
    print("RESULT " + json.dumps(out))
"""

# The fake clock for net/wifi.py, and `until(cond, ms)`: wait (in fake time) for
# cond(), recording every distinct Wifi.state on the way in `seen`.
WIFI_PRELUDE = """
import asyncio
import time
import log
log.quiet = True
_real_sleep_ms = asyncio.sleep_ms
sleeps = []


async def _fake_sleep_ms(ms):
    sleeps.append(ms)
    await _real_sleep_ms(0)  # the others run "during" the sleep, then the clock jumps
    network._advance(ms)


asyncio.sleep_ms = _fake_sleep_ms
from net.wifi import Wifi
Wifi.dns_port = 0  # the captive portal's DNS on a free port (53 needs root)

seen = []


async def until(w, cond, limit_ms, what=""):
    t0 = network._now()
    while True:
        if not seen or seen[-1] != w.state:
            seen.append(w.state)
        if cond():
            return time.ticks_diff(network._now(), t0)
        if time.ticks_diff(network._now(), t0) > limit_ms:
            raise AssertionError("timed out waiting for %s: %r" % (what, w.status()))
        await _real_sleep_ms(0)


def backoffs():
    return [ms for ms in sleeps if ms not in (500, 5000)]
"""


def run_mp(code: str, tmp_path: Path, fakes: bool = True, timeout: float = 30, console: bool = False):
    """Run `code` after the prelude under the Unix port; return what it passed to result()."""
    script = tmp_path / "script.py"
    script.write_text((PRELUDE if fakes else NO_FAKES) + code)
    try:
        r = subprocess.run([str(MICROPYTHON), str(script)], cwd=tmp_path, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"MicroPython timed out after {timeout}s\n{(e.stdout or b'').decode(errors='replace')[-3000:]}")
    assert r.returncode == 0, describe(r)
    lines = [x for x in r.stdout.decode().splitlines() if x.startswith("RESULT ")]
    assert lines, "no RESULT line\n" + describe(r)
    out = json.loads(lines[-1][len("RESULT ") :])
    return (out, r.stdout.decode()) if console else out


def test_micropython_unix_port_is_there():
    assert MICROPYTHON.exists(), "the Unix port is missing: run `make setup`"


# --- EspBoard ------------------------------------------------------------------

BOARD_SCRIPT = """
import asyncio
import board

NAME = %r
import boardfile
spec, errs = boardfile.read_spec(NAME)
machine._set_chip(spec["chip"])
machine._reset_cause = machine.WDT_RESET
b = board.load(NAME)
out = {"type": type(b).__name__, "errors": b.errors, "reset": b.reset_cause(), "mac": b.mac_hex(),
       "device_id": b.device_id(), "has_wifi": b.has_wifi, "spec_keys": sorted(b.spec)}
b.power_setup()
out["freq"] = machine.freq()
b.start_watchdog()
b.start_watchdog()  # once only: an ESP32 watchdog cannot be reconfigured away
b.feed_watchdog()
b.feed_watchdog()
out["wdts"] = machine._wdts
out["fed"] = machine._fed

dr = spec["data_request"]
b.data_request(True)
out["dr_on"] = [machine._levels.get(dr), machine._modes.get(dr)]
b.data_request(False)
out["dr_off"] = machine._levels.get(dr)

led = spec["led"]
del machine._trace[:]
b.led(False)  # the first call creates the pin: it must not light the LED on the way
if led.get("kind") == "ws2812":
    out["led_off"] = list(machine._bitstreams[led["pin"]])
    b.led(True)
    out["led_on"] = list(machine._bitstreams[led["pin"]])
else:
    out["led_off"] = machine._levels[led["pin"]]
    b.led(True)
    out["led_on"] = machine._levels[led["pin"]]
out["led_trace"] = machine._trace[:2]

r0, r1 = spec["relays"]
b.relay(0, True)
b.relay(1, False)
b.relay(2, True)  # no such relay: nothing happens
b.relay(-1, True)
out["relays"] = [machine._levels.get(r0), machine._levels.get(r1)]
out["pins_driven"] = sorted(machine._levels)

with open(%r, "rb") as f:
    telegram = f.read()


async def meter_bytes():
    src = b.open_meter()
    u = machine._uarts[spec["uart"]["id"]]
    out["uart"] = u._cfg
    out["reconnect"] = src.reconnect
    got = b""
    reads = 0

    async def meter():  # the meter sends in bursts, as a UART delivers them
        for i in range(0, len(telegram), 200):
            u._wire.send(telegram[i : i + 200])
            await asyncio.sleep_ms(2)

    t = asyncio.create_task(meter())
    while len(got) < len(telegram):
        got += await asyncio.wait_for_ms(src.read(1024), 2000)
        reads += 1
    await t
    out["same_bytes"] = got == telegram
    out["reads"] = reads
    src.close()
    src2 = b.open_meter()  # reopened by meter.run: the same UART, still readable
    out["same_uart"] = machine._uarts[spec["uart"]["id"]] is u and len(machine._uarts) == 1
    u._wire.send(b"/next")
    out["after_reopen"] = await asyncio.wait_for_ms(src2.read(64), 2000)


asyncio.run(meter_bytes())
result(out)
"""


@pytest.mark.parametrize("path", ESP_BOARDS, ids=lambda p: p.stem)
def test_esp_board(path: Path, tmp_path):
    spec = json.loads(path.read_text())
    u = spec["uart"]
    out = run_mp(BOARD_SCRIPT % (path.stem, str(TELEGRAM)), tmp_path)
    assert out["type"] == "EspBoard" and out["errors"] == [] and out["has_wifi"] is True
    assert out["spec_keys"] == sorted(set(spec) - {"description", "power_notes", "uart_alternatives"})
    # UART: the board's id and frame, RX pin and buffer, the P1 line inverted
    assert out["uart"]["baudrate"] == u["baud"] and out["uart"]["bits"] == u["bits"]
    assert out["uart"]["parity"] == u["parity"] and out["uart"]["stop"] == u["stop"]
    assert out["uart"]["rx"] == u["rx"] and out["uart"]["rxbuf"] == u["rxbuf"]
    assert out["uart"]["invert"] == (4 if u["rx_invert"] else 0)  # machine.UART.INV_RX
    assert out["same_bytes"] and out["reads"] >= 2 and out["reconnect"] is True
    assert out["same_uart"] and out["after_reopen"] == "/next"
    # pins
    assert out["dr_on"] == [1, 3] and out["dr_off"] == 0  # Pin.OUT == 3
    led = spec["led"]
    if led.get("kind") == "ws2812":
        assert out["led_on"] == [8, 0, 0] and out["led_off"] == [0, 0, 0]  # GRB: dim green
    elif led["active_low"]:
        assert (out["led_on"], out["led_off"]) == (0, 1)
        assert out["led_trace"] == [[led["pin"], 1], [led["pin"], 0]], "the LED flashed when its pin was created"
    else:
        assert (out["led_on"], out["led_off"]) == (1, 0)
    assert out["relays"] == [1, 0]
    assert set(out["pins_driven"]) == {spec["data_request"], *spec["relays"], led["pin"]}  # no other pin touched
    # system
    assert out["wdts"] == [spec["watchdog_s"] * 1000] and out["fed"] == 2
    assert out["freq"] == spec["cpu_mhz"] * 1_000_000
    assert out["reset"] == "WDT_RESET"
    assert out["mac"] == "240ac4123456" == out["device_id"]


def test_meter_task_reads_the_fake_uart(tmp_path):
    """meter.run over EspBoard: UART bytes -> asyncio stream -> framer -> parser -> hub."""
    out = run_mp(
        f"""
import asyncio
import board
import log
import meter
from hub import Hub
log.quiet = True
machine._set_chip("esp32")
b = board.load("esp32-devkit")
hub = Hub()
p = meter.Pipeline(hub)
with open({str(TELEGRAM)!r}, "rb") as f:
    telegram = f.read()


async def main():
    t = asyncio.create_task(meter.run(b, p))
    await asyncio.sleep_ms(10)
    u = machine._uarts[2]
    for n in range(3):
        for i in range(0, len(telegram), 64):
            u._wire.send(telegram[i : i + 64])
            await asyncio.sleep_ms(1)
    for _ in range(1000):  # up to 5 s on a busy machine; done as soon as the hub has all three
        if hub.seq == 3:
            break
        await asyncio.sleep_ms(5)
    t.cancel()
    from p1.bodyread import items
    r = dict(items(hub.sample.body))
    result({{"seq": hub.seq, "accepted": p.accepted, "crc_bad": p.rejected_crc, "dr": machine._levels.get(4),
             "source": p.source, "state": p.source_state, "energy": str(r.get("energy_import_t1_kwh"))}})


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["seq"] == 3 and out["accepted"] == 3 and out["crc_bad"] == 0
    assert out["dr"] == 1 and out["source"] == "uart" and out["state"] == "open"
    assert out["energy"] not in ("None", "") and "." in out["energy"]


def test_reset_cause_names(tmp_path):
    out = run_mp(
        """
import board
names = {}
for c in (0, 1, 2, 3, 4, 5):
    machine._set_chip("esp32")
    machine._reset_cause = c
    names[str(c)] = board.load("esp32-devkit").reset_cause()
result(names)
""",
        tmp_path,
    )
    assert out == {"0": "0", "1": "PWRON_RESET", "2": "HARD_RESET", "3": "WDT_RESET",
                   "4": "DEEPSLEEP_RESET", "5": "SOFT_RESET"}  # fmt: skip


def test_what_the_chip_refuses_is_recorded_not_raised(tmp_path):
    """A board file the chip cannot do boots anyway: the errors show in status."""
    bad = dict(json.loads((BOARDS / "esp32-c3-supermini.json").read_text()))
    bad.update(name="bad", cpu_mhz=240, watchdog_s=-1)
    bad["uart"] = dict(bad["uart"], rx=18)  # USB D- on a C3 with USB serial: not a GPIO there
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = run_mp(
        f"""
import board
machine._set_chip("esp32c3")
b = board.load("bad", [{str(tmp_path)!r}])
b.power_setup()
b.start_watchdog()
b.feed_watchdog()
try:
    b.open_meter()
    opened = "opened"
except ValueError as e:
    opened = "ValueError: %s" % e
result({{"type": type(b).__name__, "errors": b.errors, "freq": machine.freq(), "wdts": machine._wdts,
         "opened": opened}})
""",
        tmp_path,
    )
    assert out["type"] == "EspBoard" and out["wdts"] == [] and out["freq"] == 160_000_000
    assert any(e.startswith("cpu_mhz 240: frequency must be") for e in out["errors"]), out["errors"]
    assert any(e.startswith("watchdog_s -1: WDT timeout too short") for e in out["errors"]), out["errors"]
    assert out["opened"] == "ValueError: invalid pin"  # meter.run logs it and retries with backoff


def test_host_board_under_the_unix_port(tmp_path):
    """board.py needs no `machine` to import; without a UART it runs as host."""
    out = run_mp(
        """
import machine
import board
h = board.load("host")
e = board.load("esp32-devkit")
result({"machine_uart": hasattr(machine, "UART"), "host": type(h).__name__, "esp": type(e).__name__,
        "esp_errors": e.errors, "reset": h.reset_cause()})
""",
        tmp_path,
        fakes=False,
    )
    assert out["machine_uart"] is False and out["host"] == "HostBoard" and out["reset"] == "host"
    assert out["esp"] == "HostBoard" and any("needs machine" in x for x in out["esp_errors"])
    # with the fakes loaded, "host" is still the host board
    out = run_mp('import board\nresult({"host": type(board.load("host")).__name__})\n', tmp_path)
    assert out == {"host": "HostBoard"}


def test_fakes_raise_where_the_esp32_port_raises(tmp_path):
    """The fakes' own contract (from the port's sources): what each call refuses."""
    out = run_mp(
        """
out = {}


def attempt(name, f):
    try:
        f()
        out[name] = "ok"
    except Exception as e:
        out[name] = "%s: %s" % (type(e).__name__, e)


machine._set_chip("esp32")
sta = network.WLAN(network.STA_IF)
ap = network.WLAN(network.AP_IF)
attempt("connect inactive", lambda: sta.connect("home", "secret123"))
attempt("txpower inactive", lambda: sta.config(txpower=8.5))
ap.active(True)
attempt("connect ap only", lambda: sta.connect("home", "secret123"))
attempt("ap wpa2 short", lambda: ap.config(essid="x", password="short", authmode=3))
attempt("ap wpa2 empty", lambda: ap.config(essid="x", authmode=3))
attempt("ap wep", lambda: ap.config(essid="x", password="12345678", authmode=1))
attempt("ap wpa2 ok", lambda: ap.config(essid="x", password="12345678", authmode=3))
attempt("sta essid", lambda: sta.config(essid="x"))
attempt("both args", lambda: sta.config("mac", pm=1))
attempt("unknown param", lambda: sta.config(nope=1))
attempt("txpower 30 dBm", lambda: ap.config(txpower=30))
attempt("hostname 33", lambda: network.hostname("x" * 33))
attempt("rssi offline", lambda: sta.status("rssi"))
attempt("rssi on ap", lambda: ap.status("rssi"))
attempt("WLAN(2)", lambda: network.WLAN(2))
attempt("uart 3 on esp32", lambda: machine.UART(3))
attempt("uart bad invert", lambda: machine.UART(1, invert=1))
attempt("uart 7 stop bits", lambda: machine.UART(1, stop=7))
attempt("uart tiny rxbuf", lambda: machine.UART(1, rxbuf=128))
attempt("uart no such pin", lambda: machine.UART(1, rx=28))
attempt("pin 35 out", lambda: machine.Pin(35, machine.Pin.OUT))
attempt("pin 24", lambda: machine.Pin(24))
attempt("wdt 0", lambda: machine.WDT(timeout=0))
attempt("wdt id 1", lambda: machine.WDT(id=1, timeout=1000))
attempt("freq 100", lambda: machine.freq(100000000))
machine._set_chip("esp32c3")
attempt("uart 2 on c3", lambda: machine.UART(2))
attempt("freq 240 on c3", lambda: machine.freq(240000000))
out["status idle"] = sta.status()
out["ap mac"] = list(ap.config("mac"))
result(out)
""",
        tmp_path,
    )
    assert out == {
        "connect inactive": "OSError: Wifi Not Started",
        "txpower inactive": "OSError: Wifi Not Started",
        "connect ap only": "OSError: Wifi Invalid Mode",
        "ap wpa2 short": "OSError: Wifi Invalid Password",
        "ap wpa2 empty": "OSError: Wifi Invalid Password",
        "ap wep": "RuntimeError: Wifi Unknown Error 0x0102",
        "ap wpa2 ok": "ok",
        "sta essid": "OSError: AP required",
        "both args": "TypeError: either pos or kw args are allowed",
        "unknown param": "ValueError: unknown config param",
        "txpower 30 dBm": "RuntimeError: Wifi Unknown Error 0x0102",
        "hostname 33": "ValueError: ",
        "rssi offline": "OSError: Wifi Not Connected",
        "rssi on ap": "OSError: STA required",
        "WLAN(2)": "ValueError: invalid WLAN interface identifier",
        "uart 3 on esp32": "ValueError: UART(3) does not exist",
        "uart bad invert": "ValueError: invalid inversion mask",
        "uart 7 stop bits": "ValueError: invalid stop bits",
        "uart tiny rxbuf": "OSError: [Errno 1] EPERM: ESP_FAIL",
        "uart no such pin": "ValueError: invalid pin",
        "pin 35 out": "ValueError: pin can only be input",
        "pin 24": "ValueError: invalid pin",
        "wdt 0": "ValueError: WDT timeout too short",
        "wdt id 1": "ValueError: ",
        "freq 100": "ValueError: frequency must be 20MHz, 40MHz, 80MHz, 160MHz, 240MHz",
        "uart 2 on c3": "ValueError: UART(2) does not exist",
        "freq 240 on c3": "ValueError: frequency must be 20MHz, 40MHz, 80MHz, 160MHz",
        "status idle": 1000,  # STAT_IDLE
        "ap mac": [0x24, 0x0A, 0xC4, 0x12, 0x34, 0x57],
    }


# --- Wi-Fi -------------------------------------------------------------------------


def run_wifi(code: str, tmp_path: Path) -> dict:
    return run_mp(WIFI_PRELUDE + code, tmp_path)


def test_wifi_joins(tmp_path):
    out = run_wifi(
        """
network._aps["home"] = ["secret123", -58]
w = Wifi({"ssid": "home", "password": "secret123", "ap_password": ""}, "p1-3456", 8.5)


async def main():
    t = asyncio.create_task(w.run())
    took = await until(w, lambda: w.state == "connected", 60000, "connected")
    await until(w, lambda: len(sleeps) > 10, 60000, "some checks")  # stays connected
    result({"seen": seen, "took": took, "status": w.status(), "hostname": network.hostname(),
            "dhcp": network._dhcp_hostname, "txpower": network._txpower, "pm": network._pm,
            "connects": network._connects, "ap": network.WLAN(network.AP_IF).active(),
            "sta": network.WLAN(network.STA_IF).active(), "alive": not t.done(), "log": log.recent})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["seen"] == ["off", "connecting", "connected"]
    assert out["took"] <= 2500  # joined at the first poll after the fake's 1.5 s
    assert out["status"] == {
        "state": "connected", "ssid": "home", "hostname": "p1-3456", "attempts": 1, "reconnects": 0,
        "error": "", "ip": "192.168.1.50", "rssi": -58, "ap": None,
    }  # fmt: skip
    assert out["hostname"] == "p1-3456" and out["dhcp"] == "p1-3456"  # set before connect(): sent to DHCP
    assert out["txpower"] == 34 and out["pm"] == 1  # 8.5 dBm in quarter dBm; power save left at the default
    assert out["connects"] == ["home"] and out["sta"] is True and out["ap"] is False
    assert out["alive"] and out["log"] == []


def test_wifi_wrong_password_backs_off_opens_the_ap_and_keeps_trying(tmp_path):
    out = run_wifi(
        """
network._aps["home"] = ["right-password", -70]
w = Wifi({"ssid": "home", "password": "wrong-pass", "ap_password": "ap-secret-1"}, "p1-3456", 8.5)
ap = network.WLAN(network.AP_IF)
out = {}


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.attempts == 2, 600000, "a second attempt")
    out["first_error"] = w.status()["error"]
    out["ap_after_1"] = ap.active()
    await until(w, lambda: w.ap is not None, 600000, "the access point")
    out["ap_open"] = {"attempts": w.attempts, "active": ap.active(), "essid": ap.config("essid"),
                      "security": ap.config("security"), "key": ap.config("key"), "status": w.status()}
    await until(w, lambda: w.attempts == 6, 600000, "more station attempts")
    out["connects"] = len(network._connects)
    out["backoffs"] = backoffs()
    network._aps["home"][0] = "wrong-pass"  # the router's password changed back
    await until(w, lambda: w.state == "connected", 600000, "connected")
    out["after"] = w.status()
    out["ap_after_join"] = ap.active()
    out["alive"] = not t.done()
    out["seen"] = seen
    t.cancel()


asyncio.run(main())
result(out)
""",
        tmp_path,
    )
    assert out["first_error"] == "home: STAT_WRONG_PASSWORD (attempt 1)" and out["ap_after_1"] is False
    ap = out["ap_open"]
    assert ap["attempts"] == 3 and ap["active"] is True and ap["essid"] == "p1-3456"
    assert ap["security"] == 3 and ap["key"] == "ap-secret-1"  # WPA2 with the configured password
    assert ap["status"]["state"] == "ap" and ap["status"]["ap"] == {"essid": "p1-3456", "ip": "192.168.4.1"}
    assert out["connects"] == 6  # the station kept trying beside the access point
    assert out["backoffs"][:5] == [2000, 4000, 8000, 16000, 32000]
    assert out["after"]["state"] == "connected" and out["after"]["error"] == "" and out["after"]["ap"] is None
    assert out["after"]["reconnects"] == 0  # the first join is not a rejoin
    assert out["ap_after_join"] is False and out["alive"]
    assert out["seen"][:4] == ["off", "connecting", "ap", "connecting"]


def test_wifi_no_ap_found_backoff_is_capped(tmp_path):
    out = run_wifi(
        """
w = Wifi({"ssid": "nowhere", "password": "whatever1"}, "p1-3456", None)


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.attempts == 10, 3600000, "ten attempts")
    result({"backoffs": backoffs(), "status": w.status(), "alive": not t.done(),
            "ap_security": network.WLAN(network.AP_IF).config("security"), "txpower": network._txpower})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["backoffs"] == [2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000, 120000]
    assert out["status"]["error"] == "nowhere: STAT_NO_AP_FOUND (attempt 9)"
    assert out["status"]["state"] == "connecting" and out["status"]["ap"]["essid"] == "p1-3456"
    assert out["ap_security"] == 3  # no ap_password: WPA2 with a generated one
    assert out["txpower"] == 80  # no board TX power: the radio's default is left alone
    assert out["alive"]


def test_wifi_rejoins_after_the_link_drops(tmp_path):
    out = run_wifi(
        """
network._aps["home"] = ["secret123", -58]
w = Wifi({"ssid": "home", "password": "secret123"}, "p1-3456", 8.5)
out = {}


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.state == "connected", 60000, "connected")
    del network._aps["home"]  # the router goes away
    network._drop()
    out["noticed_ms"] = await until(w, lambda: w.state == "connecting", 60000, "the drop")
    await until(w, lambda: w.attempts == 4, 600000, "two failed rejoins")
    out["during"] = w.status()
    network._aps["home"] = ["secret123", -60]  # and comes back
    await until(w, lambda: w.state == "connected", 600000, "connected again")
    out["after"] = w.status()
    out["alive"] = not t.done()
    t.cancel()


asyncio.run(main())
result(out)
""",
        tmp_path,
    )
    assert out["noticed_ms"] <= 5000  # checked every 5 s while connected
    assert out["during"]["ip"] is None and out["during"]["rssi"] is None
    assert out["during"]["error"].startswith("home: STAT_NO_AP_FOUND")
    after = out["after"]
    assert after["state"] == "connected" and after["reconnects"] == 1 and after["rssi"] == -60
    assert after["attempts"] == 4 and after["error"] == "" and out["alive"]  # the third rejoin made it


def test_wifi_ap_is_wpa2_with_a_generated_password_printed_on_the_console(tmp_path):
    """No ap_password: WPA2 with a generated one, kept across boots, printed on the
    console but not in the log that status shows; the task keeps running."""
    code = """
w = Wifi({"ssid": ""}, "p1-3456", 8.5)
ap = network.WLAN(network.AP_IF)


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.state == "ap", 60000, "the access point")
    await until(w, lambda: len(sleeps) >= 3, 60000, "a few checks")
    result({"status": w.status(), "security": ap.config("security"), "key": ap.config("key"),
            "file": open("ap_key").read()[:-16], "log": log.recent, "alive": not t.done(), "sleeps": sleeps[:3]})
    t.cancel()


asyncio.run(main())
"""
    out, console = run_mp(WIFI_PRELUDE + code, tmp_path, console=True)
    key = out["key"]
    assert out["security"] == 3 and len(key) == 10 and key == out["file"]
    assert f"wifi: access point p1-3456, WPA2 password: {key}" in console
    assert key not in json.dumps(out["status"]) + json.dumps(out["log"])
    assert out["status"]["state"] == "ap" and out["alive"] and out["sleeps"] == [5000, 5000, 5000]
    out2, _ = run_mp(WIFI_PRELUDE + code, tmp_path, console=True)  # the next boot: the same password
    assert out2["key"] == key


def test_wifi_open_ap_only_when_configured(tmp_path):
    out = run_wifi(
        """
w = Wifi({"ssid": "", "ap_open": True}, "p1-3456", 8.5)


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.state == "ap", 60000, "the access point")
    result({"security": network.WLAN(network.AP_IF).config("security"), "alive": not t.done()})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out == {"security": 0, "alive": True}


def test_wifi_short_ap_password_uses_the_generated_one_and_logs_it(tmp_path):
    """WPA2 needs 8 characters (config refuses shorter ones; here past it): the radio
    refuses "short", the generated password is used, never an open access point."""
    out = run_wifi(
        """
w = Wifi({"ssid": "home", "password": "nope-nope", "ap_password": "1234"}, "p1-3456", 8.5)


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.attempts == 5, 600000, "five attempts")
    result({"ap": w.ap is not None, "security": network.WLAN(network.AP_IF).config("security"),
            "key": network.WLAN(network.AP_IF).config("key"), "error": w.status()["error"],
            "log": log.recent, "connects": len(network._connects), "alive": not t.done()})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["ap"] and out["security"] == 3 and len(out["key"]) == 10
    assert any("ap_password refused, generated one used" in x for x in out["log"])
    assert out["connects"] == 5 and out["alive"]


def test_wifi_ap_that_cannot_start_does_not_end_the_task(tmp_path):
    out = run_wifi(
        """
w = Wifi({"ssid": ""}, "p1-3456", 8.5)


async def main():
    network._fail["active"] = OSError("Wifi Internal Error")
    t = asyncio.create_task(w.run())
    await until(w, lambda: "active" not in network._fail, 60000, "the fault")
    await until(w, lambda: w.state == "ap", 600000, "the access point after all")
    result({"alive": not t.done(), "log": log.recent, "backoffs": backoffs()[:1]})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["alive"] and out["backoffs"] == [2000]
    assert any("ap: Wifi Internal Error" in x for x in out["log"])


def test_wifi_survives_every_fault(tmp_path):
    """Exceptions from the radio, MemoryError included, are logged and retried with backoff."""
    out = run_wifi(
        """
network._aps["home"] = ["secret123", -58]
w = Wifi({"ssid": "home", "password": "secret123", "ap_password": "ap-secret-1"}, "p1-" + "x" * 40, 8.5)
faults = [("active", OSError("Wifi Internal Error")), ("connect", RuntimeError("Wifi Unknown Error 0x3001")),
          ("isconnected", MemoryError())]


async def main():
    t = asyncio.create_task(w.run())
    for name, e in faults:  # one at a time, each raised by the next call of that method
        network._fail[name] = e
        await until(w, lambda: name not in network._fail, 600000, "the %s fault" % name)
    await until(w, lambda: w.state == "connected", 3600000, "connected")
    network._fail["status"] = OSError("Wifi Internal State Error")  # raised after a failed attempt
    network._aps.clear()
    network._drop()
    await until(w, lambda: "status" not in network._fail, 3600000, "the status fault")
    network._aps["home"] = ["secret123", -58]
    await until(w, lambda: w.state == "connected", 3600000, "connected")
    network._fail["ifconfig"] = OSError("Wifi Internal Error")
    st = w.status()
    network._fail.clear()
    network._fail["active"] = OSError("Wifi Internal Error")  # the access point cannot start
    w.start_ap()
    ap_failed = w.ap is None and not network.WLAN(network.AP_IF).active()
    result({"state": w.state, "alive": not t.done(), "log": log.recent, "status_during_fault": st,
            "backoffs": backoffs(), "ap_failed": ap_failed, "error": w.error})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["state"] == "connected" and out["alive"]
    logged = "\n".join(out["log"])
    for what in ("hostname: ", "OSError: Wifi Internal Error", "RuntimeError: Wifi Unknown Error 0x3001",
                 "MemoryError", "OSError: Wifi Internal State Error"):  # fmt: skip
        assert what in logged, f"{what!r} not logged:\n{logged}"
    assert out["status_during_fault"]["state"] == "connected"  # status() itself never raises
    assert out["backoffs"][:2] == [2000, 4000]  # the first faults backed off
    assert out["ap_failed"] and out["error"] == "ap: Wifi Internal Error"


def test_wifi_rare_code_is_loaded_per_call_and_status_survives_its_import_failing(tmp_path):
    """net.wifi_rare (access point, status section) leaves RAM after each call; when
    it cannot be imported (out of memory), status() still answers with the state."""
    out = run_wifi(
        """
import sys
w = Wifi({"ssid": "home", "password": "secret123"}, "p1-3456", 8.5)
network._aps["home"] = ["secret123", -58]


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.state == "connected", 600000, "connected")
    st = w.status()
    loaded = "net.wifi_rare" in sys.modules
    w.start_ap()  # as without a station
    ap = w.ap is not None
    w.stop_ap()
    loaded_after_ap = "net.wifi_rare" in sys.modules

    def no_memory(job, *args):
        raise MemoryError("memory allocation failed, allocating 512 bytes")

    w._rare = no_memory
    failed = w.status()
    result({"ip": st["ip"], "loaded": loaded, "ap": ap, "ap_closed": w.ap is None,
            "loaded_after_ap": loaded_after_ap, "failed": failed, "alive": not t.done()})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["ip"] and out["ap"] and out["ap_closed"] and out["alive"]
    assert not out["loaded"] and not out["loaded_after_ap"]
    assert out["failed"]["state"] == "connected" and "MemoryError" in out["failed"]["error"]


def test_heap_that_keeps_failing_resets_the_device_after_recording_why(tmp_path):
    """App's heap watch on an ESP32: 8 caught MemoryErrors within a minute -> the reason
    goes to bootinfo.json, then machine.reset(); the next boot shows it in status."""
    out = run_mp(
        f"""
import config, log
from app import App
import board
machine._set_chip("esp32")
b = board.load("esp32-devkit")
b.storage_dir = {str(tmp_path)!r}
b.record_boot()
log.quiet = True
app = App(config.copy_defaults(), [], b)
app._watch_heap()
for i in range(7):
    log.oom("test")
app._watch_heap()
before = b.reset_reason
try:
    log.oom("test")
    app._watch_heap()
    how = "no reset"
except SystemExit as e:
    how = str(e)
b2 = board.load("esp32-devkit")
b2.storage_dir = {str(tmp_path)!r}
b2.record_boot()
result({{"before": before, "how": how, "reason": b2.reset_reason, "boots": b2.boot_count}})
""",
        tmp_path,
    )
    assert out["before"] == "" and out["how"] == "machine.reset()"
    assert out["reason"].startswith("memory: 8 allocation failures in 60 s") and out["boots"] == 2


def test_watchdog_fed_only_while_the_services_are_alive(tmp_path):
    """App's supervisor on an ESP32 (fake machine.WDT, real asyncio): fed each round while
    meter, HTTP and MQTT live; not fed (and the reason recorded for the reset to come) while
    a task keeps failing or the HTTP server stopped listening; fed again once it is back. A
    service that ended on purpose (MQTT switched off) does not starve it."""
    out = run_mp(
        f"""
import asyncio
import app as appmod
import config, log
from app import App
from clock import ticks_add, ticks_ms
import board
log.quiet = True
machine._set_chip("esp32")
spec_default = __import__("boardfile").FALLBACK["watchdog_s"]
b = board.load("esp32-devkit")
b.storage_dir = {str(tmp_path)!r}
b.record_boot()
b.start_watchdog()
app = App(config.copy_defaults(), [], b)
out = {{"wdt": machine._wdts[:], "default_s": spec_default}}
_real = asyncio.sleep_ms


async def fast_sleep_ms(ms):  # the backoffs take no time
    await _real(0)


appmod.sleep_ms = fast_sleep_ms


async def rounds(k=3):
    n = machine._fed
    t = asyncio.create_task(app._supervise())
    for _ in range(k):
        await _real(0)
    t.cancel()
    await _real(0)
    return machine._fed - n


def reason():  # (bootinfo.json is written by fsutil: its whole copy, checksum line off)
    data, _ = __import__("fsutil").read({str(tmp_path / "bootinfo.json")!r})
    return __import__("json").loads(data)["reset_reason"]


async def forever():
    await _real(100000)


class Srv:  # what App._down() looks at of web.server.Server
    server = object()
    _tick = None


async def main():
    srv = Srv()
    srv._tick = asyncio.create_task(forever())
    app.web = srv
    out["alive"] = (app._down(), await rounds() > 0)
    fails = [0]
    limit = [5]

    async def broken():  # fails until it failed limit[0] times, then waits for a new limit
        while fails[0] >= limit[0]:
            await _real(0)
        fails[0] += 1
        raise ValueError("broken meter")

    app._task(broken, "meter")
    while fails[0] < 5:
        await _real(0)
    out["five_fails"] = (app._down(), await rounds() > 0)
    limit[0] = 6
    while fails[0] < 6:
        await _real(0)
    await _real(0)
    out["six_fails"] = (app._down(), await rounds(), app.down, reason())
    app.tasks[-1].cancel()
    await _real(0)
    n, t = app.fails["meter"]
    app.fails["meter"] = (n, ticks_add(ticks_ms(), -60000))  # its present run lasted a minute
    out["back"] = (app._down(), await rounds() > 0, app.down, reason(), "meter" in app.fails)
    srv.server = None  # web.cold.relisten: not listening
    out["http_not_listening"] = (app._down(), await rounds())
    srv.server = object()
    srv._tick.cancel()
    await _real(0)
    out["http_reaper_ended"] = (app._down(), await rounds())
    srv._tick = asyncio.create_task(forever())

    async def ends():  # MQTT switched off: its run() returns
        return

    app._task(ends, "mqtt")
    await _real(0)
    out["ended_on_purpose"] = (app._down(), await rounds() > 0)
    srv._tick.cancel()


asyncio.run(main())
result(out)
""",
        tmp_path,
    )
    assert out["wdt"] == [60000] and out["default_s"] == 60  # on by default, the board's 60 s
    assert out["alive"] == [None, True]
    assert out["five_fails"] == [None, True]  # restarting with backoff is not down yet
    assert out["six_fails"] == ["meter", 0, "meter", "watchdog: meter is down"]
    assert out["back"] == [None, True, None, "", False]
    assert out["http_not_listening"] == ["http", 0]
    assert out["http_reaper_ended"] == ["http", 0]
    assert out["ended_on_purpose"] == [None, True]


def test_the_clock_is_set_from_the_meters_time_stamp(tmp_path):
    """No network time on the dongle: health.set_clock sets the RTC (UTC) from the
    latest telegram's time stamp, so `time_not_set` is not raised on a board whose
    meter sends one (it is for one that sends none)."""
    code = """
import health


class S:
    def __init__(self, body):
        self.body = body


ok = health.set_clock(S(b'{"timestamp": "2022-10-06T15:50:14+03:00", "meter": "x"}'))
dt1 = machine.RTC().datetime()
ok2 = health.set_clock(S(b'{"timestamp": "2023-01-01T00:30:00-01:00", "meter": "x"}'))
dt2 = machine.RTC().datetime()
none = [health.set_clock(S(b'{"timestamp": null, "meter": "x"}')), health.set_clock(None),
        health.set_clock(S(b'{"timestamp": "2022-10-0"}'))]
result({"ok": [ok, ok2], "dt1": dt1, "dt2": dt2, "none": none})
"""
    out = run_mp(code, tmp_path)
    assert out["ok"] == [True, True] and out["none"] == [False, False, False]
    assert out["dt1"] == [2022, 10, 6, 3, 12, 50, 14, 0]  # a Thursday, 12:50:14 UTC
    assert out["dt2"] == [2023, 1, 1, 6, 1, 30, 0, 0]  # a Sunday, 01:30 UTC
