"""Home Assistant discovery judged by Home Assistant itself.

The host-board firmware publishes to a real mosquitto; every recorded telegram
(with a good CRC) is sent to it in turn and, after Home Assistant's birth
message (`online`: a full discovery round), the retained configs on the broker
are exactly one per reading of that telegram (the previous meter's others are
emptied). Each config then goes through Home Assistant 2024.3.3, the oldest
release we support (`.venv-ha`, made by `make`; host_tests/ha_check.py): the
MQTT sensor platform's discovery schema accepts it (dropping only
`default_entity_id`, see docs/MQTT.md), its unit and state class are valid for
its device class, and its value_template, rendered by HA's template engine
against the state payload, gives the /api/v1/reading value exactly (Decimal
against the fixed-point digits; reactive power in var: the kvar digits times
1000, in Decimal).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from decimal import Decimal

import paho.mqtt.publish as pub
import pytest
from mosquitto import Mosquitto, Subscriber, available
from p1util import BAD_CRC, recorded
from runtime_harness import REPO, Firmware, MeterServer

sys.path.insert(0, str(REPO / "firmware"))

from net import ha  # noqa: E402
from p1.table import by_name  # noqa: E402


def configs(*args) -> list[tuple[str, str]]:
    """net.ha.configs, each payload's pieces joined: the config as the broker gets it."""
    return [(t, "".join(p)) for t, p in ha.configs(*args)]


HA_PY = REPO / ".venv-ha" / "bin" / "python"
CASES = [p for p in recorded() if p.name not in BAD_CRC]
PREFIX = "homeassistant"

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto not installed (make setup)")


def ha_check(cases: list[dict]) -> list[dict]:
    if not HA_PY.exists():
        pytest.fail("Home Assistant's venv is missing: `make test` makes .venv-ha", pytrace=False)
    r = subprocess.run(
        [str(HA_PY), str(REPO / "host_tests" / "ha_check.py")],
        input=json.dumps(cases).encode(),
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return json.loads(r.stdout)


class Dongle:
    """The firmware reading a loopback meter, publishing to `broker`, and a
    subscriber that keeps the last payload of every discovery config."""

    def __init__(self, tmp_path, broker: Mosquitto):
        self.broker = broker
        self.sim = MeterServer()
        self.fw = Firmware(tmp_path, "--source", self.sim.source, "--mqtt", f"127.0.0.1:{broker.port}")
        self.sim.accept()
        st = self.fw.status()
        self.device_id, self.version = st["device_id"], st["version"]
        self.base = st["mqtt"]["base_topic"]
        self.sub = Subscriber(broker, [f"{PREFIX}/sensor/{self.device_id}/+/config", self.base + "/state"])
        self.fw.wait(lambda: self.fw.status()["mqtt"]["state"] == "connected", what="the broker")

    def send(self, data: bytes, n: int) -> tuple[bytes, bytes]:
        """Send a telegram (the `n`th accepted) -> (its state payload, /api/v1/reading)."""
        self.sim.send(data)
        self.fw.wait(lambda: self.fw.status()["meter"]["accepted"] == n, what="telegram %d" % n)
        state = self.sub.wait_count(self.base + "/state", n)[n - 1]
        st, _, reading = self.fw.get("/api/v1/reading")
        assert st == 200
        return state, reading

    def retained(self) -> dict[str, bytes]:
        """Each config topic's last payload, the empty ones left out."""
        last: dict[str, bytes] = {}
        with self.sub.cond:
            for t, p, _ in self.sub.messages:
                if t.endswith("/config"):
                    last[t] = p
        return {t: p for t, p in last.items() if p}

    def wait_configs(self, state: bytes) -> dict[str, str]:
        """Until the broker holds exactly the configs of this state's readings."""
        want = dict(configs(state, self.device_id, self.base, PREFIX, self.version))
        ok = self.sub.wait(lambda: {t: p.decode() for t, p in self.retained().items()} == want, 10)
        assert ok, sorted(set(self.retained()) ^ set(want))
        return want

    def close(self):
        self.sub.close()
        self.fw.stop_ok()
        self.sim.close()


@pytest.fixture
def dongle(tmp_path):
    with Mosquitto(tmp_path) as b:
        d = Dongle(tmp_path, b)
        try:
            yield d
        finally:
            d.close()


def expected(name: str, value, unit: str | None):
    """What HA's state must be, from /api/v1/reading's value (Decimal, int, str)."""
    if value is None:
        return "None"
    if unit == "var":
        return value * 1000  # Decimal: exact
    return value


def test_every_config_for_every_recorded_telegram_passes_home_assistant(dongle):
    cases, readings = [], []
    for n, path in enumerate(CASES, 1):
        state, reading = dongle.send(path.read_bytes(), n)
        pub.single(f"{PREFIX}/status", "online", hostname="127.0.0.1", port=dongle.broker.port)  # a full round
        cases.append({"telegram": path.name, "state": state.decode(), "configs": dongle.wait_configs(state)})
        readings.append(json.loads(reading, parse_float=Decimal))
    results = ha_check(cases)
    checked = 0
    for case, result, reading in zip(cases, results, readings):
        assert result["version"] == "2024.3.3"
        names = {t.split("/")[3] for t in case["configs"]}
        # on <base>/tariff (docs/TARIFF.md) and <base>/energy/hour (docs/HISTORY.md)
        tariff = {n for n in names if n.startswith(("tariff_", "energy_hour_"))}
        assert names - tariff == set(reading) - {"meter", "age_s"}, case["telegram"]
        assert len(tariff) == (7 if reading["timestamp"] is not None else 0), case["telegram"]
        for topic, r in result["configs"].items():
            where = "%s %s" % (case["telegram"], topic)
            cfg = json.loads(case["configs"][topic])
            name = topic.split("/")[3]
            assert r["error"] is None, where + ": " + r["error"]
            assert r["dropped"] == ["default_entity_id"], where
            if name in tariff:  # (its JSON is not the state's: HA accepts the config, that is all here;
                # the energy sensors: test_energy_history_sensors)
                continue
            assert r["warnings"] == [], where
            value, unit = reading[name], cfg.get("unit_of_measurement")
            got = r["rendered"]
            if cfg.get("device_class") == "timestamp":
                assert datetime.fromisoformat(got) == datetime.fromisoformat(value), where
            elif r["numeric"] and value is not None:
                assert isinstance(value, (Decimal, int)), where
                assert Decimal(got) == expected(name, value, unit), f"{where}: HA {got!r}, reading {value!r}"
                obis_unit = by_name(name)[1]
                assert unit == {"kvar": "var", "m3": "m³"}.get(obis_unit, obis_unit), where
            else:
                assert got == expected(name, value, unit), f"{where}: HA {got!r}, reading {value!r}"
            checked += 1
    assert checked > 200, checked


def test_m_bus_device_classes_come_from_the_device_type(dongle):
    """Gas and water both count m3; the channel's device type tells them apart."""
    tel = REPO / "host_tests" / "telegrams"
    topic = f"{PREFIX}/sensor/{dongle.device_id}/%s/config"
    got = {}
    for n, (name, readings) in enumerate(
        (("be-fluvius-emucs-01.txt", ("gas_m3", "water_m3")), ("nl-nwa-warmtelink-01.txt", ("heat_gj",))), 1
    ):
        dongle.send((tel / name).read_bytes(), n)
        ok = dongle.sub.wait(lambda: all(topic % r in dongle.retained() for r in readings), 10)
        assert ok, sorted(dongle.retained())
        got.update({r: json.loads(dongle.retained()[topic % r]) for r in readings})
    assert {r: (c["device_class"], c["unit_of_measurement"]) for r, c in got.items()} == {
        "gas_m3": ("gas", "m³"),
        "water_m3": ("water", "m³"),
        "heat_gj": ("energy", "GJ"),
    }


def test_a_reading_the_meter_stopped_sending_loses_its_config(dongle):
    """DSMR 5 with gas, then only an E360 (no gas): within 64 telegrams the gas
    sensors' retained configs are emptied, with no restart and no HA birth."""
    tel = REPO / "host_tests" / "telegrams"
    state, _ = dongle.send((tel / "nl-dsmr5-iskra-01.txt").read_bytes(), 1)
    dongle.wait_configs(state)
    gas = f"{PREFIX}/sensor/{dongle.device_id}/gas_m3/config"
    assert gas in dongle.retained()
    e360 = (tel / "se-lg-e360-01.txt").read_bytes()
    state, _ = dongle.send(e360, 2)
    want = dict(configs(state, dongle.device_id, dongle.base, PREFIX, dongle.version))
    ok = dongle.sub.wait(lambda: want.items() <= {t: p.decode() for t, p in dongle.retained().items()}.items(), 10)
    assert ok and gas in dongle.retained()  # new names are added; nothing is taken away yet
    for n in range(3, 66):
        state, _ = dongle.send(e360, n)
    dongle.wait_configs(state)  # E360's configs only: gas_m3, gas_timestamp, tariff... emptied
    assert gas not in dongle.retained()


def test_after_a_broker_restart_every_config_again_but_not_the_empty_ones(dongle):
    """The broker restarted (without a store: every retained config gone): the dongle's
    next session sends every config of its readings again; the empty configs of the
    names it does not send went out in the boot's first round and are not sent again."""
    tel = REPO / "host_tests" / "telegrams"
    state, _ = dongle.send((tel / "se-lg-e360-01.txt").read_bytes(), 1)
    want = dongle.wait_configs(state)
    # the boot's first round also emptied the configs of the names an E360 does not send
    assert dongle.sub.wait(lambda: len([1 for _, p, _ in dongle.sub.messages if not p]) > 10, 10)
    dongle.sub.close()
    dongle.broker.stop()
    dongle.broker.start()
    dongle.sub = sub = Subscriber(dongle.broker, [f"{PREFIX}/sensor/{dongle.device_id}/+/config"])
    dongle.fw.wait(lambda: dongle.fw.status()["mqtt"]["discovery_sent"] >= 2, what="a round after the restart")
    assert sub.wait(lambda: {t: p.decode() for t, p, _ in sub.messages if p} == want, 10), sub.messages
    assert [t for t, p, _ in sub.messages if not p] == []


@pytest.mark.parametrize(
    "text", ["0.308", "1.2345", "12.3", "5", "0.001", "0.000", "0.29", "1.005", "123456.789", "null"]
)
def test_var_template_moves_the_decimal_point_exactly(text):
    """kvar -> var by HA's template engine, for digits a float product would miss
    (0.29 * 1000 and 1.005 * 1000 are not whole numbers in binary floating point)."""
    name = "l1_reactive_power_import_kvar"
    cfg = "".join(ha.sensor_config(name, text, "d", "p1/d", '{"identifiers": ["d"]}'))
    (result,) = ha_check([{"state": '{"%s": %s}' % (name, text), "configs": {"t": cfg}}])
    r = result["configs"]["t"]
    assert (r["error"], r["warnings"]) == (None, [])
    if text == "null":
        assert r["rendered"] == "None"  # HA: unknown
    else:
        assert Decimal(r["rendered"]) == Decimal(text) * 1000 and "e" not in r["rendered"], r["rendered"]


def test_energy_history_sensors():
    """The last closed hour's import and export (<base>/energy/hour, the API's JSON of
    one period): HA reads the Wh exactly and resets its total at the hour's start; a
    gap is unknown."""
    from history import json as period_json

    body = b'{"timestamp": "2026-10-25T04:00:07+02:00", "meter": "LGF5E360", "energy_import_kwh": 1.000}'
    cfgs = {t: p for t, p in configs(body, "d", "p1/d", PREFIX, "0") if "/energy_hour_" in t}
    assert sorted(t.split("/")[3] for t in cfgs) == ["energy_hour_export_wh", "energy_hour_import_wh"]
    ok = period_json("2026-10-25T03:00+02:00", [2448, 384, 150, 636], "ok").decode()
    gap = period_json("2026-10-25T03:00+03:00", [None] * 4, "gap").decode()
    results = ha_check([{"state": ok, "configs": cfgs}, {"state": gap, "configs": cfgs}])
    for state, result in zip((ok, gap), results):
        for topic, r in result["configs"].items():
            assert (r["error"], r["dropped"], r["warnings"]) == (None, ["default_entity_id"], []), topic
            cfg = json.loads(cfgs[topic])
            assert cfg["state_topic"] == "p1/d/energy/hour" and cfg["unit_of_measurement"] == "Wh"
            want = json.loads(state)[topic.split("/")[3].split("_")[2] + "_wh"]
            assert r["rendered"] == str(want), (topic, r["rendered"])  # 'None' for a gap: unknown
            assert r["numeric"] is True
            assert datetime.fromisoformat(r["last_reset"]) == datetime.fromisoformat(json.loads(state)["start"])


def test_configs_are_canonical_json_for_every_recorded_telegram():
    """net.ha writes each config as text (no dict, no JSON writer on the device): it
    must be exactly what a JSON writer makes of it, keys sorted, non-ASCII escaped,
    for every recorded telegram, with relays and with a topic that needs escaping."""
    from p1.body import Encoder
    from p1util import frames

    n = 0
    for path in recorded():
        for frame in frames(path.read_bytes())[0]:
            body = Encoder().encode(bytes(frame))[0]
            for args in (("d1", "p1/d1", PREFIX, "1.0", ()), ('q"d', "p1/ä\\x", "ha", "0.1", ((2, 'Sa"una ä'),))):
                for topic, payload in configs(body, *args):
                    assert payload == json.dumps(json.loads(payload), sort_keys=True), (path.name, topic)
                    n += 1
    assert n > 1000
