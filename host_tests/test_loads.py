"""Load management (firmware/loads.py, loadscold.py; docs/LOADCONTROL.md): the rules fed
readings directly (host_tests/mp/loads_cases.py) on CPython and under the Unix-port
MicroPython, the config's checks, then end to end over HTTP on the host board."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import run_cases_under_micropython
from mosquitto import Mosquitto, Subscriber, available
from runtime_harness import Firmware

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "host_tests" / "mp"))

import config  # noqa: E402
import loads_cases  # noqa: E402


@pytest.mark.parametrize("case", loads_cases.CASES, ids=lambda f: f.__name__[5:])
def test_loads(case, tmp_path):
    case(str(tmp_path))


def test_loads_under_micropython(tmp_path):
    run_cases_under_micropython("loads", tmp_path)


def test_relay_settings_are_checked_in_the_config():
    _, errors = config.validate(
        {"loads": {"margin_pct": 110, "restore_pct": 120, "delay_s": 0},
         "relay2": {"safe": "maybe", "priority": 10, "min_off_s": -1, "name": "x" * 25}}
    )  # fmt: skip
    assert errors == [
        "config: loads.delay_s: out of range 1..3600, using 10",
        "config: loads.restore_pct: below margin_pct (110), using 100 and 90",
        "config: relay2.min_off_s: out of range 0..86400, using 300",
        'config: relay2.name: at most 24 characters, using ""',
        "config: relay2.priority: out of range 1..9, using 1",
        'config: relay2.safe: on or off, using "off"',
    ]


# --- end to end: the host board with four relays, the simulator, HTTP and MQTT ------

J = {"Content-Type": "application/json"}
PW = "correct horse 1"


def _call(fw, method, path, body=None, token=None):
    h = dict(J if body is not None else {})
    if token:
        h["Authorization"] = "Bearer " + token
    st, _, b = fw.get(path, method, json.dumps(body) if body is not None else None, h)
    return st, (json.loads(b) if b else None)


def test_relays_end_to_end_over_http_and_mqtt(tmp_path):
    """A 1 A fuse: every simulated reading is an overload, so the guard sheds a load
    per delay (meter time: a telegram every 60 s, sent every 20 ms), lowest priority
    first; the API shows it and takes overrides with the admin login only."""
    cfg = {
        "board": "host-relays",
        "loads": {"fuse_a": 1, "margin_pct": 100, "restore_pct": 50, "delay_s": 10},
        "relay1": {"name": "sauna", "priority": 3, "safe": "on", "min_on_s": 0},
        "relay2": {"name": "ev", "priority": 1, "safe": "on", "min_on_s": 0},
        "relay4": {"name": "boiler", "priority": 2, "safe": "on", "min_on_s": 0},
    }
    mq = available()
    broker = Mosquitto(tmp_path).__enter__() if mq else None
    sub = Subscriber(broker, ["p1/+/relays", "homeassistant/switch/#"]) if broker else None
    args = ["--interval", "0.02", "--step", "60"] + (["--mqtt", broker.url] if broker else [])
    fw = Firmware(tmp_path, *args, config=json.dumps(cfg))
    try:
        def all_shed():
            st, d = _call(fw, "GET", "/api/v1/relays")
            return d if st == 200 and not [r for r in d["relays"] if r["on"]] else None

        d = fw.wait(all_shed, 30, "every load shed")
        assert [(r["relay"], r["name"], r["priority"]) for r in d["relays"]] == [(1, "sauna", 3), (2, "ev", 1), (4, "boiler", 2)]
        offs = [x["relay"] for x in d["log"] if not x["on"]]
        assert offs == [2, 4, 1], d["log"]  # lowest priority first
        assert d["log"][-1]["reason"].startswith("L") and "A > 1.000 A for" in d["log"][-1]["reason"], d["log"]
        assert d["stale"] is False and d["fuse_a"] == 1
        printed = [ln.strip() for ln in fw.lines if ln.startswith("relay ")]
        assert printed[:3] == ["relay 0 on", "relay 1 on", "relay 3 on"] and printed[3:6] == ["relay 1 off", "relay 3 off", "relay 0 off"], printed
        st = fw.status()
        assert st["loads"]["relays"] == d["relays"] and "relay3" not in json.dumps(st["config_errors"])
        # an override needs the admin login: 403 before a password is set, 401 without a session
        assert _call(fw, "POST", "/api/v1/relays", {"relay": 1, "mode": "on"})[0] == 403
        token = _call(fw, "POST", "/api/v1/password", {"password": PW})[1]["token"]
        assert _call(fw, "POST", "/api/v1/relays", {"relay": 1, "mode": "on"})[0] == 401
        st, e = _call(fw, "POST", "/api/v1/relays", {"relay": 3, "mode": "up", "expiry_s": 0}, token)
        assert st == 422 and e == {"errors": {"relay": "a configured relay: 1, 2, 4", "mode": "on, off or auto",
                                              "expiry_s": "1..86400 seconds"}}, e  # fmt: skip
        st, d = _call(fw, "POST", "/api/v1/relays", {"relay": 1, "mode": "on", "expiry_s": 600}, token)
        assert st == 200 and d["relays"][0]["on"] is True and d["relays"][0]["mode"] == "on", d
        assert 598 <= d["relays"][0]["override_s"] <= 600 and d["log"][-1]["reason"] == "override on for 600 s (http)"
        fw.wait(lambda: "relay 0 on" in [ln.strip() for ln in fw.lines[-20:]], 5, "relay 0 printed on")
        # relay settings through the config API: checked (422), saved only when good
        st, e = _call(fw, "PATCH", "/api/v1/config", {"relay1": {"safe": "maybe"}}, token)
        assert st == 422 and e == {"errors": {"relay1.safe": "on or off"}}, e
        st, e = _call(fw, "PATCH", "/api/v1/config", {"relay1": {"priority": 9}}, token)
        assert st == 200 and e["reboot"] == ["relay1.priority"], e
        if sub is not None:  # the state, retained, and a Home Assistant switch per relay
            assert sub.wait(lambda: any(b'"mode": "on"' in p for p in sub.on(sub.messages[-1][0]) if b'"relays"' in p), 10)
            states = [json.loads(p) for t, p, _ in sub.messages if t.endswith("/relays")]
            assert states[-1]["relays"][0]["mode"] == "on"
            sub.wait(lambda: len([t for t, _, _ in sub.messages if t.startswith("homeassistant/switch/")]) >= 3, 10)
            sw = {t.split("/")[3]: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/switch/")}
            assert sorted(sw) == ["relay1", "relay2", "relay4"], sorted(sw)
            assert sw["relay4"]["command_topic"].endswith("/relay/4/set") and sw["relay4"]["name"] == "boiler"
            base = sw["relay4"]["command_topic"][: -len("/relay/4/set")]
            import paho.mqtt.publish as publish

            publish.single(base + "/relay/4/set", "on 120", hostname=broker.host, port=broker.port)
            assert sub.wait(lambda: any(json.loads(p)["relays"][2]["mode"] == "on" for t, p, _ in sub.messages if t.endswith("/relays")), 10)
            st, d = _call(fw, "GET", "/api/v1/relays")
            assert d["relays"][2]["on"] is True and d["log"][-1]["reason"] == "override on for 120 s (mqtt)", d
    finally:
        if sub is not None:
            sub.close()
        fw.stop()
        if broker is not None:
            broker.__exit__(None, None, None)


def test_no_relay_configured_nothing_is_loaded(tmp_path):
    """The host board has no relays: /api/v1/relays is 404, no loads section."""
    fw = Firmware(tmp_path, "--interval", "0.05", config=json.dumps({"relay1": {"name": "x"}}))
    try:
        fw.wait(lambda: fw.status()["telegrams"] > 0, 10, "a telegram")
        st, d = _call(fw, "GET", "/api/v1/relays")
        assert st == 404 and d["error"] == "no relay configured"
        s = fw.status()
        assert "loads" not in s and any("relay1: the board has 0 relay outputs" in e for e in s["config_errors"]), s
    finally:
        fw.stop()


def test_relay_switches_pass_home_assistant(tmp_path):
    """The discovery config of each relay's switch against Home Assistant's own switch
    schema, its template rendered against the state the dongle publishes."""
    import subprocess

    from net import ha

    ha_py = ROOT / ".venv-ha" / "bin" / "python"
    if not ha_py.exists():
        pytest.fail("Home Assistant's venv is missing: `make test` makes .venv-ha", pytrace=False)
    app, ld = loads_cases.make(str(tmp_path), relays={1: {"name": "sauna", "safe": "on"}, 3: {"name": ""}})
    state = ld.text()
    body = loads_cases.body(0)
    rel = [(r[0], r[1]) for r in sorted(ld.r)]
    cfgs = {t: "".join(p) for t, p in ha.configs(body, "dev1", "p1/dev1", "homeassistant", "1.0", rel) if "/switch/" in t}
    assert sorted(cfgs) == ["homeassistant/switch/dev1/relay%d/config" % n for n in (1, 2, 4)]
    r = subprocess.run([str(ha_py), str(ROOT / "host_tests" / "ha_check.py")],
                       input=json.dumps([{"state": state, "configs": cfgs}]).encode(), capture_output=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    res = json.loads(r.stdout)[0]["configs"]
    for t, x in res.items():
        assert x["error"] is None and x["dropped"] == ["default_entity_id"], (t, x)  # (as the sensors: docs/MQTT.md)
    assert [res["homeassistant/switch/dev1/relay%d/config" % n]["rendered"] for n in (1, 2, 4)] == ["on", "off", "off"]
