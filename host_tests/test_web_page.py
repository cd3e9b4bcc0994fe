"""The live web page (firmware/web/static) in headless Debian chromium, served by
the real host-board firmware: what a user sees must equal, exactly, the text of
the JSON numbers the API sends (0.000 stays 0.000)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from runtime_harness import REPO, Firmware, MeterServer, free_port

sys.path.insert(0, str(REPO / "tools"))
from simulate import Meter  # noqa: E402

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover
    pytest.fail("playwright is not installed: run `make setup`", pytrace=False)

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = REPO / "build" / "web-page.png"
META = {"timestamp", "meter", "age_s"}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("chromium is missing: run `make setup` (apt package chromium)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Tab:
    """A page plus every console error and uncaught exception it produced."""

    def __init__(self, browser, scheme="light", width=390):
        self.ctx = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        self.page: Page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def text(self, sel: str) -> str:
        return self.page.locator(sel).text_content() or ""

    def snapshot(self) -> dict:
        """Everything the page shows for a reading, read in one go."""
        return self.page.evaluate(
            """() => {
              const o = {};
              document.querySelectorAll('[data-k]').forEach(e => { o[e.dataset.k] = e.textContent; });
              const ts = document.getElementById('ts');
              return {values: o, ts: ts.dateTime, tsText: ts.textContent,
                      meter: document.getElementById('meter').textContent,
                      net: document.getElementById('net').textContent,
                      flow: document.getElementById('now').dataset.flow};
            }"""
        )

    def close(self):
        self.ctx.close()


def get_json(port: int, path: str):
    """The API's JSON with every non-integer number kept as its text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read(), parse_float=str, parse_int=str)


def get_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode("iso-8859-1")


def net_text(imp: str, exp: str) -> str:
    d = Decimal(imp) - Decimal(exp)
    return ("+" if d > 0 else "\u2212" if d < 0 else "") + str(abs(d))


def check_page_shows(snap: dict, reading: dict) -> int:
    """Every reading the page shows equals the JSON text; the key ones are there."""
    assert snap["meter"] == reading["meter"]
    assert snap["ts"] == reading["timestamp"]
    assert snap["tsText"] == reading["timestamp"].replace("T", " ")
    shown = snap["values"]
    n = 0
    for name, value in reading.items():
        if name in META or name not in shown:
            continue
        if name == "equipment_id":
            assert shown[name] == bytes.fromhex(value).decode("ascii")
        else:
            assert shown[name] == value, f"{name}: page {shown[name]!r} != API {value!r}"
        n += 1
    for name in ("l1_voltage_v", "l2_voltage_v", "l3_voltage_v",
                 "l1_current_a", "l2_current_a", "l3_current_a",
                 "power_import_kw", "power_export_kw"):  # fmt: skip
        assert name in shown, f"{name} not on the page"
    assert any(k.startswith("energy_") for k in shown)
    assert snap["net"] == net_text(reading["power_import_kw"], reading["power_export_kw"])
    return n


def matching(tab: Tab, port: int, tries=40):
    """(page snapshot, API reading) of the same telegram: the page and the
    API are read alternately until their time stamps agree."""
    for _ in range(tries):
        before = get_json(port, "/api/v1/reading")
        snap = tab.snapshot()
        after = get_json(port, "/api/v1/reading")
        for r in (before, after):
            if r["timestamp"] == snap["ts"]:
                return snap, r
        time.sleep(0.05)
    raise AssertionError("page and API never showed the same telegram")


# ---------------------------------------------------------------- simulator
@pytest.fixture(scope="module")
def sim_fw(tmp_path_factory):
    # The simulator's clock advances by the interval and its time stamps have
    # 1 s resolution: 1 s keeps one time stamp per telegram.
    fw = Firmware(tmp_path_factory.mktemp("web"), "--interval", "1")
    try:
        fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="first reading")
        yield fw
    finally:
        fw.stop_ok()


def test_live_page_against_simulator(browser, sim_fw):
    tab = Tab(browser)
    pg = tab.page
    try:
        pg.goto(f"http://127.0.0.1:{sim_fw.port}/")
        pg.wait_for_selector("#live[data-state=live]", timeout=5000)
        pg.wait_for_selector("#now:not([hidden])", timeout=5000)
        assert tab.text("#live") == "live"
        assert pg.locator("#waiting").is_hidden()
        assert pg.locator("#errors").is_hidden()
        assert pg.locator("#stale").is_hidden()

        snap, reading = matching(tab, sim_fw.port)
        assert check_page_shows(snap, reading) >= 20  # fi: every value has a place
        assert re.fullmatch(r"\d+ s ago", tab.text("#age"))

        # live: the time stamp changes without a reload
        pg.evaluate("window.__same_document = 1")
        ts0 = snap["ts"]
        pg.wait_for_function("t => document.getElementById('ts').dateTime !== t", arg=ts0, timeout=5000)
        assert pg.evaluate("window.__same_document") == 1
        snap, reading = matching(tab, sim_fw.port)
        check_page_shows(snap, reading)

        # status panel: parser counters (refreshed while the page is open)
        # and the firmware's identity
        pg.wait_for_selector("[data-k=accepted]")
        first = int(tab.text("[data-k=accepted]"))
        pg.wait_for_function(
            "n => +document.querySelector('[data-k=accepted]').textContent > n",
            arg=first,
            timeout=8000,
        )
        status = get_json(sim_fw.port, "/api/v1/status")
        panel = tab.text("#parser")
        for label in ("Telegrams", "CRC errors", "Truncated", "Oversized", "Skipped bytes"):
            assert label in panel
        for k in ("framer_crc_errors", "framer_truncated", "framer_oversized", "framer_skipped_bytes"):
            assert tab.text(f"[data-k={k}]") == status["meter"][k] == "0"
        assert tab.text("[data-k=version]") == status["version"]
        assert tab.text("[data-k=board]") == "host"
        assert tab.text("[data-k=wifi]") == "none"

        # raw telegram, byte for byte
        pg.click("#rawbox summary")
        pg.wait_for_function("() => document.getElementById('raw').textContent.startsWith('/')")
        for _ in range(40):
            a = get_text(sim_fw.port, "/api/v1/telegram")
            shown = tab.text("#raw")
            b = get_text(sim_fw.port, "/api/v1/telegram")
            if shown in (a, b):
                break
        else:
            raise AssertionError(f"raw view {shown!r} != /api/v1/telegram {a!r}")
        assert shown.startswith("/" + reading["meter"]) and "\r\n!" in shown

        SCREENSHOT.parent.mkdir(exist_ok=True)
        pg.screenshot(path=str(SCREENSHOT), full_page=True)
        assert tab.errors == []
    finally:
        tab.close()


def test_exact_numbers_and_net_power_in_the_browser(browser, sim_fw):
    tab = Tab(browser)
    pg = tab.page
    try:
        pg.goto(f"http://127.0.0.1:{sim_fw.port}/")
        pg.wait_for_selector("#now:not([hidden])", timeout=5000)
        assert pg.evaluate("P1.viaSource") is True  # Chromium has JSON.parse source text
        text = '{"a": 0.000, "b": "x 1.50 \\" 2.0", "c": [896.020, -2.50, 7], "d": null, "e": true}'
        want = {"a": "0.000", "b": 'x 1.50 " 2.0', "c": ["896.020", "-2.50", "7"], "d": None, "e": True}
        assert pg.evaluate("t => P1.parseExact(t)", text) == want
        assert pg.evaluate("t => JSON.parse(P1.quoteNumbers(t))", text) == want  # fallback
        for a, b, net in [("2.860", "0.000", "+2.860"), ("0.000", "0.199", "\u22120.199"),
                          ("0.000", "0.000", "0.000"), ("1.5", "0.25", "+1.25"),
                          ("12345.678", "12345.679", "\u22120.001")]:  # fmt: skip
            assert pg.evaluate("([a, b]) => P1.minus(a, b).text", [a, b]) == net
            assert net_text(a, b) == net
        assert tab.errors == []
    finally:
        tab.close()


def test_reconnecting_indicator(browser, sim_fw):
    tab = Tab(browser)
    pg = tab.page
    try:
        pg.route("**/api/v1/events", lambda route: route.abort())
        pg.goto(f"http://127.0.0.1:{sim_fw.port}/")
        pg.wait_for_selector("#live[data-state=reconnecting]", timeout=5000)
        # while the stream is down the page polls, so the values still come
        pg.wait_for_selector("#now:not([hidden])", timeout=5000)
        pg.unroute("**/api/v1/events")
        pg.wait_for_selector("#live[data-state=live]", timeout=10000)
        assert all("events" in e or "ERR_FAILED" in e for e in tab.errors), tab.errors
    finally:
        tab.close()


# ---------------------------------------------------------------- controlled meter
def test_waiting_then_first_telegram_then_stale(browser, tmp_path):
    """A meter the test drives: nothing at first, then one DSMR 5 telegram,
    then silence (the page's clock runs ahead), then the next telegram."""
    meter = Meter(seed=5, dialect="dsmr5")
    sim = MeterServer()
    broker = free_port()  # nothing listens there: MQTT stays disconnected
    cfg = {"bogus": 1, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker}}
    fw = Firmware(tmp_path, "--source", sim.source, config=json.dumps(cfg))
    tab = Tab(browser)
    pg = tab.page
    try:
        sim.accept()
        pg.clock.install()
        pg.goto(f"http://127.0.0.1:{fw.port}/")
        pg.wait_for_selector("#waiting:not([hidden])", timeout=5000)
        assert "waiting for the first telegram from the meter" in tab.text("#waiting").lower()
        assert pg.locator("#now").is_hidden()
        assert pg.locator("#phases").is_hidden()
        pg.wait_for_selector("#live[data-state=live]", timeout=5000)
        errors = tab.text("#errors")  # config errors are shown prominently
        assert pg.locator("#errors").is_visible() and "bogus" in errors

        data, clean = meter.emit()
        assert clean
        sim.send(data)
        pg.wait_for_selector("#now:not([hidden])", timeout=5000)
        assert pg.locator("#waiting").is_hidden()
        reading = get_json(fw.port, "/api/v1/reading")
        snap = tab.snapshot()
        assert check_page_shows(snap, reading) >= 15
        for k in ("gas_m3", "energy_import_t1_kwh", "energy_export_t2_kwh", "tariff"):
            assert snap["values"][k] == reading[k]
        assert snap["flow"] in ("import", "export", "zero")

        pg.wait_for_selector("#mqttbox:not([hidden])", timeout=5000)
        state = tab.text("[data-k=mqtt_state]")
        assert re.fullmatch(rf"(connecting|disconnected) \u00b7 127\.0\.0\.1:{broker}", state)
        assert tab.text("[data-k=mqtt_error]")  # connection refused

        # an older browser (no EventSource, no JSON.parse source text) polls and
        # parses through the tokenizer: the same exact text
        poller = Tab(browser, scheme="dark")
        try:
            poller.page.add_init_script(
                "delete window.EventSource; const p = JSON.parse;"
                "JSON.parse = (t, r) => p(t, r && ((k, v) => r.call(this, k, v)));"
            )
            poller.page.goto(f"http://127.0.0.1:{fw.port}/")
            poller.page.wait_for_selector("#now:not([hidden])", timeout=5000)
            assert poller.page.locator("#live").get_attribute("data-state") == "polling"
            assert poller.page.evaluate("P1.viaSource") is False
            check_page_shows(poller.snapshot(), reading)
            assert poller.errors == []
        finally:
            poller.close()

        pg.click("#rawbox summary")
        pg.wait_for_function("() => document.getElementById('raw').textContent.length > 0")
        assert tab.text("#raw") == data.decode("iso-8859-1") == get_text(fw.port, "/api/v1/telegram")

        status = get_json(fw.port, "/api/v1/status")  # counters are still now
        pg.wait_for_selector("[data-k=accepted]:text-is('1')", timeout=6000)
        for k in ("framer_crc_errors", "framer_truncated", "framer_oversized", "framer_skipped_bytes"):
            assert tab.text(f"[data-k={k}]") == str(status["meter"][k])

        pg.clock.fast_forward("00:40")
        pg.wait_for_selector("#stale:not([hidden])", timeout=3000)
        assert "stale" in tab.text("#stale").lower()
        assert re.search(r"\d+ s ago", tab.text("#age"))

        meter.step(10)
        data, _ = meter.emit()
        sim.send(data)
        pg.wait_for_function("t => document.getElementById('ts').dateTime !== t", arg=snap["ts"])
        assert pg.locator("#stale").is_hidden()
        reading = get_json(fw.port, "/api/v1/reading")
        check_page_shows(tab.snapshot(), reading)
        pg.wait_for_function("() => document.getElementById('raw').textContent.length > 0")
        pg.wait_for_function("t => document.getElementById('raw').textContent === t",
                             arg=data.decode("iso-8859-1"))  # fmt: skip
        pg.screenshot(path=str(SCREENSHOT.with_name("web-page-dsmr5.png")), full_page=True)
        assert tab.errors == []
    finally:
        tab.close()
        rc = fw.stop()
        sim.close()
    assert rc == 0


def test_alarms_on_the_page(browser, tmp_path):
    """health.py's alarms as a banner: no telegram for a second, then one comes."""
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source, config=json.dumps({"alarms": {"no_telegram_s": 1}}))
    tab = Tab(browser)
    pg = tab.page
    try:
        sim.accept()
        fw.wait(lambda: fw.status()["alarms"] == ["no_telegram"], what="the alarm")
        pg.goto(f"http://127.0.0.1:{fw.port}/")
        pg.wait_for_selector("#alarms:not([hidden])", timeout=5000)
        assert pg.locator("#alarms").get_attribute("data-alarms") == "no_telegram"
        assert "no telegram from the meter" in tab.text("#alarms")
        meter = Meter(seed=5, dialect="dsmr5")
        for _ in range(80):  # telegrams every 0.2 s (the alarm's limit is 1 s) until the page had its status
            sim.send(meter.emit()[0])
            meter.step(1)
            time.sleep(0.2)
            if pg.locator("#alarms").is_hidden():
                break
        assert pg.locator("#alarms").is_hidden() and pg.locator("#now").is_visible()
        assert tab.errors == []
    finally:
        tab.close()
        fw.stop()
        sim.close()


# ---------------------------------------------------------------- charts
def prefill_history(folder: Path) -> None:
    """Seven weeks of known history (host_tests/mp/history_cases.py) up to
    2026-11-20 09:45 Finnish time, with no telegrams from 9 November 23:00 to
    10 November 01:00 (two gap days); its registers end ~0.5 kWh below the
    simulator's first telegram's (seed 5, 09:55:07)."""
    sys.path[:0] = [str(REPO / "firmware"), str(REPO / "host_tests" / "mp")]
    import history_cases as hc

    folder.mkdir()
    m = hc.Meter(str(folder), regs=[9532959, 2966602, 2666979, 748701])
    m.run(hc.local_um(2026, 10, 1), hc.local_um(2026, 11, 20, 9, 46), step=900,
          skip=(hc.local_um(2026, 11, 9, 23), hc.local_um(2026, 11, 10, 1)))  # fmt: skip


def shown_bars(pg: Page, chart: str) -> list[dict]:
    return pg.evaluate(
        """id => [...document.querySelectorAll('#' + id + ' g[data-start]')].map(g => {
             const r = g.querySelectorAll('rect');
             return {start: g.dataset.start, status: g.dataset.status, import_wh: g.dataset.importWh || null,
                     export_wh: g.dataset.exportWh || null, h_imp: +r[0].getAttribute('height'),
                     h_exp: +r[1].getAttribute('height')};
           })""",
        chart,
    )


def test_charts_history_tariff_and_fuse_bars(browser, tmp_path):
    """Daily and monthly bars equal /api/v1/history; the rolling chart grows by one
    point per reading; each phase bar is current / fuse; the tariff card equals
    /api/v1/tariff."""
    prefill_history(tmp_path / "hist")
    meter = Meter(seed=5, start="2026-11-20T07:55:07+00:00")  # 09:55:07 in Finland
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source, config=json.dumps({"loads": {"fuse_a": 20}}))
    tab = Tab(browser, width=800)
    pg = tab.page
    try:
        sim.accept()
        pg.clock.install()
        sim.send(meter.emit()[0])
        fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="first reading")
        pg.goto(f"http://127.0.0.1:{fw.port}/")
        pg.wait_for_selector("#energy:not([hidden])", timeout=5000)
        pg.wait_for_function("() => document.querySelectorAll('#months g[data-start]').length > 0")
        pg.wait_for_function("() => document.querySelectorAll('#days g[data-start]').length > 0")

        # bars: one per period of the API, its values, heights in proportion
        for chart, res in (("days", "day"), ("months", "month")):
            api = get_json(fw.port, f"/api/v1/history?resolution={res}")["periods"]
            bars = shown_bars(pg, chart)
            assert [(b["start"], b["status"], b["import_wh"], b["export_wh"]) for b in bars] == [
                (p["start"], p["status"], p["import_wh"], p["export_wh"]) for p in api
            ]
            ok = [b for b in bars if b["status"] == "ok"]
            assert len(ok) >= (20 if res == "day" else 1)
            top = max(int(b["import_wh"]) for b in ok)
            tall = max(ok, key=lambda b: int(b["import_wh"]))
            for b in ok:
                assert abs(b["h_imp"] / tall["h_imp"] - int(b["import_wh"]) / top) < 0.01
                assert b["h_exp"] > 0
            if res == "day":
                assert [b["start"] for b in bars if b["status"] == "gap"] == ["2026-11-09", "2026-11-10"]
                assert len(bars) == 31
            else:
                assert [b["start"] for b in ok] == ["2026-10"]  # November is still running
        assert "2026-10" in tab.text("#energy")

        # the rolling chart: one more point per reading (meter minutes: 10 fit)
        pg.wait_for_selector("#chart:not([hidden])")
        assert pg.locator("#roll").get_attribute("data-n") == "1"
        for i in range(2, 9):  # 09:56:07 .. 10:02:07: a new hour at 10:00:07
            meter.step(60)
            data, _ = meter.emit()
            sim.send(data)
            pg.wait_for_function("n => document.getElementById('roll').dataset.n == n", arg=str(i), timeout=5000)
        pts = pg.locator("#roll polyline").get_attribute("points") or ""
        assert len(pts.split()) == 8

        # phase bars: current / loads.fuse_a
        reading = get_json(fw.port, "/api/v1/reading")
        pg.wait_for_function("t => document.getElementById('ts').dateTime === t", arg=reading["timestamp"])
        assert tab.text("#fusea") == "main fuse 20 A"
        for i in (1, 2, 3):
            row = pg.locator(f".fbar[data-phase=l{i}]")
            want = min(100.0, float(Decimal(reading[f"l{i}_current_a"]) * 100 / 20))
            assert float(row.locator("svg").get_attribute("data-pct") or "") == pytest.approx(want, abs=0.01)
            assert float(row.locator("rect").nth(1).get_attribute("width") or "") == pytest.approx(want, abs=0.01)
            assert row.text_content() == f"L{i} {reading[f'l{i}_current_a']} A"

        # tariff: fetched at each quarter hour and once a minute; equal to the API
        pg.clock.fast_forward("01:01")
        meter.step(60)
        sim.send(meter.emit()[0])
        fw.wait(lambda: get_json(fw.port, "/api/v1/reading")["timestamp"].startswith("2026-11-20T10:03"), what="10:03")
        tariff = get_json(fw.port, "/api/v1/tariff")
        assert tariff["hour"]["average_w"] is not None
        for p in ("hour", "15min"):
            for k in ("average_w", "projected_w"):
                pg.wait_for_selector(f"[data-k=tariff_{p}_{k}]:text-is('{tariff[p][k]}')", timeout=5000)
        assert tab.text("[data-k=tariff_w]") == ("\u2013" if tariff["tariff_w"] is None else tariff["tariff_w"])
        pg.screenshot(path=str(SCREENSHOT.with_name("web-page-charts.png")), full_page=True)
        assert tab.errors == []
    finally:
        tab.close()
        rc = fw.stop()
        sim.close()
    assert rc == 0
