"""The settings page (firmware/web/static/settings.html) in headless Debian
chromium, served by the real host firmware: first setup of the admin password,
a validation error shown next to its field, a change saved (and in the file),
secrets never shown, a browser without the session refused."""

from __future__ import annotations

import json

from runtime_harness import REPO
from test_settings_api import fw, saved_config  # noqa: F401 - the same firmware fixture and saved config
from test_web_page import Tab, browser  # noqa: F401 - the module's chromium fixture

SCREENSHOT = REPO / "build" / "settings-page.png"


def test_settings_page_setup_error_save_and_refusal(browser, fw):  # noqa: F811
    url = f"http://127.0.0.1:{fw.port}/static/settings.html"
    tab = Tab(browser, width=800)
    p = tab.page
    try:
        p.goto(url)
        # first boot: the setup form, the settings shown read-only
        p.wait_for_selector("#login:not([hidden])")
        assert tab.text("#lh") == "Set the admin password"
        pw = p.locator("#f-mqtt-password")
        assert pw.get_attribute("type") == "password" and pw.input_value() == ""
        assert pw.get_attribute("placeholder") == "set (unchanged)"
        assert "mqtt-secret-1" not in p.content()
        p.fill("#pw", "page-password-1")
        p.click("#lb")
        p.wait_for_selector("#logout:not([hidden])")
        assert p.locator("#login").is_hidden()
        # a validation error next to its field, nothing saved
        before = fw.config.read_text()
        p.fill("#f-mqtt-port", "70000")
        p.fill("#f-wifi-ap_password", "short")
        p.fill("#f-http-cors_origin", "dash.lan")  # the http keys are listed too (no scheme: refused)
        p.click("#save")
        p.wait_for_function("document.querySelector('.err[data-for=\"mqtt.port\"]').textContent !== ''")
        assert tab.text('.err[data-for="mqtt.port"]') == "out of range 1..65535"
        assert tab.text('.err[data-for="wifi.ap_password"]') == "empty or 8..63 characters (WPA2)"
        assert tab.text('.err[data-for="http.cors_origin"]').startswith('expected "", "*" or an origin')
        assert "Not saved" in tab.text("#msg")
        saved = saved_config(fw)
        assert saved["mqtt"]["port"] == 1883 and json.loads(before.rsplit("#p1crc ", 1)[0])["mqtt"] == saved["mqtt"]
        # a good change: saved, the reboot named, the secret kept
        p.fill("#f-mqtt-port", "1884")
        p.fill("#f-wifi-ap_password", "")
        p.fill("#f-wifi-hostname", "p1-kitchen")
        p.fill("#f-http-cors_origin", "http://dash.lan:3000")
        p.click("#save")
        p.wait_for_function("document.getElementById('msg').textContent.startsWith('Saved.')")
        assert "After a reboot: wifi.hostname." in tab.text("#msg")
        assert "Applied now: http.cors_origin, mqtt.port." in tab.text("#msg")
        saved = saved_config(fw)
        assert saved["mqtt"]["port"] == 1884 and saved["wifi"]["hostname"] == "p1-kitchen"
        assert saved["http"]["cors_origin"] == "http://dash.lan:3000"
        assert saved["mqtt"]["password"] == "mqtt-secret-1"
        assert p.locator("#f-mqtt-port").input_value() == "1884"
        # the MQTT test gives the broker's (here: the resolver's) answer
        p.click("#mtest")
        p.wait_for_function("document.getElementById('mres').textContent.startsWith('Failed: ')")
        p.click("#scan")  # the host board has no radio
        p.wait_for_function("document.getElementById('mres').textContent === 'no Wi-Fi on this board'")
        assert p.locator("#f-wifi-ssid").get_attribute("list") == "ssids"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        p.screenshot(path=str(SCREENSHOT), full_page=True)
        # (the refused save, the scan without a radio)
        assert [e for e in tab.errors if "status of 422" not in e and "status of 404" not in e] == [], tab.errors
    finally:
        tab.close()
    # another browser, without the session: the login form, nothing shown
    other = Tab(browser)
    try:
        other.page.goto(url)
        other.page.wait_for_selector("#login:not([hidden])")
        assert other.text("#lh") == "Log in" and other.page.locator("#cfg").is_hidden()
        assert "broker.example" not in other.page.content()
        other.page.fill("#pw", "wrong-password")
        other.page.click("#lb")
        other.page.wait_for_function("document.getElementById('pwerr').textContent !== ''")
        assert other.text("#pwerr") == "wrong password"
        other.page.fill("#pw", "page-password-1")
        other.page.click("#lb")
        other.page.wait_for_selector("#cfg:not([hidden])")
        assert other.page.locator("#f-mqtt-port").input_value() == "1884"
        # 401 console messages of the refused requests are expected; nothing else
        assert all("401" in e for e in other.errors), other.errors
    finally:
        other.close()
