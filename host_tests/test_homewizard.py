"""The HomeWizard-compatible local API (`http.homewizard: true`) read by
python-homewizard-energy, the client of Home Assistant's HomeWizard
integration (4.3.1, as HA 2024.3.3 pins it; in `.venv-ha`, made by `make`;
host_tests/hw_client.py), after each recorded telegram with a good CRC, with
the firmware under CPython and under MicroPython's Unix port.

Every field the client returns is checked against /api/v1/reading, in
Decimal: copies digit for digit, totals as the sum of the tariffs, power as
import less export in W. The raw JSON is checked too (its numbers as
Decimal, exact digits); a field the test does not know fails it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from decimal import Decimal

import pytest
from p1util import BAD_CRC, recorded
from runtime_harness import REPO, Firmware, MeterServer

HA_PY = REPO / ".venv-ha" / "bin" / "python"
CASES = [p for p in recorded() if p.name not in BAD_CRC]
ON = '{"http": {"homewizard": true}}'


def client(port: int) -> dict:
    if not HA_PY.exists():
        pytest.fail("the venv with HomeWizard's client is missing: `make test` makes .venv-ha", pytrace=False)
    r = subprocess.run(
        [str(HA_PY), str(REPO / "host_tests" / "hw_client.py"), f"127.0.0.1:{port}"],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return json.loads(r.stdout)


def d(v) -> Decimal:
    """A reading (Decimal or int from exact JSON) or a client float's repr -> Decimal."""
    return Decimal(v) if isinstance(v, str) else Decimal(v)


def hex_text(v: str) -> str:
    """What the client makes of a hex id: its text if it is UTF-8, else as is."""
    try:
        return bytes.fromhex(v).decode("utf-8")
    except ValueError:
        return v


def wall(iso: str) -> str:
    """The meter's wall clock of an ISO time stamp, naive, as the client parses yymmddhhmmss."""
    return datetime.fromisoformat(iso).replace(tzinfo=None).isoformat()


def want(r: dict) -> dict:
    """Client field -> the value it must have, from the reading `r` (None: left out)."""
    g = r.get

    def total(name):
        if g(name + "_kwh") is not None:
            return g(name + "_kwh")
        t1, t2 = g(name + "_t1_kwh"), g(name + "_t2_kwh")
        return None if t1 is None or t2 is None else t1 + t2

    def watts(prefix):
        imp, exp = g(prefix + "power_import_kw"), g(prefix + "power_export_kw")
        if imp is None and exp is None:
            return None
        return ((imp or 0) - (exp or 0)) * 1000

    out = {
        "wifi_ssid": None,  # the host board has no Wi-Fi
        "wifi_strength": None,
        "smr_version": None if g("dsmr_version") is None else int(g("dsmr_version")),
        "meter_model": g("meter"),
        "unique_meter_id": None if g("equipment_id") is None else hex_text(g("equipment_id")),
        "active_tariff": None if g("tariff") is None else int(g("tariff")),
        "total_energy_import_kwh": total("energy_import"),
        "total_energy_import_t1_kwh": g("energy_import_t1_kwh"),
        "total_energy_import_t2_kwh": g("energy_import_t2_kwh"),
        "total_energy_export_kwh": total("energy_export"),
        "total_energy_export_t1_kwh": g("energy_export_t1_kwh"),
        "total_energy_export_t2_kwh": g("energy_export_t2_kwh"),
        "active_power_w": watts(""),
        "total_gas_m3": g("gas_m3"),
        "gas_timestamp": None if g("gas_timestamp") is None else wall(g("gas_timestamp")),
        "any_power_fail_count": g("power_failures"),
        "long_power_fail_count": g("long_power_failures"),
    }
    for ph in "123":
        out[f"active_power_l{ph}_w"] = watts(f"l{ph}_")
        out[f"active_voltage_l{ph}_v"] = g(f"l{ph}_voltage_v")
        out[f"active_current_l{ph}_a"] = g(f"l{ph}_current_a")
        out[f"voltage_sag_l{ph}_count"] = g(f"l{ph}_voltage_sags")
        out[f"voltage_swell_l{ph}_count"] = g(f"l{ph}_voltage_swells")
    ext = {}
    for name, kind, unit in (("gas_m3", "GAS_METER", "m3"), ("water_m3", "WATER_METER", "m3"), ("heat_gj", "HEAT_METER", "GJ")):
        ts = g(name.split("_")[0] + "_timestamp")
        if g(name) is not None and ts is not None:
            ext[name] = {"unique_id": name, "meter_type": kind, "value": g(name), "unit": unit, "timestamp": wall(ts)}
    out["external_devices"] = ext
    return out


def same(got, expect) -> bool:
    if isinstance(expect, (Decimal, int)) and not isinstance(expect, bool) and not isinstance(got, (dict, list)):
        return got is not None and d(got) == expect
    if isinstance(expect, dict):
        return isinstance(got, dict) and got.keys() == expect.keys() and all(same(got[k], expect[k]) for k in expect)
    return got == expect


@pytest.mark.parametrize("port", ["cpython", "micropython"])
def test_homewizard_client_reads_every_field_exactly(tmp_path, port):
    sim = MeterServer()
    fw = Firmware(tmp_path, *(["--mp"] if port == "micropython" else []), "--source", sim.source, config=ON)
    try:
        sim.accept()
        got = client(fw.port)  # before the first telegram: the device and Wi-Fi only
        assert got["device"] == {
            "product_name": "P1 meter",
            "product_type": "HWE-P1",
            "serial": fw.status()["device_id"],
            "api_version": "v1",
            "firmware_version": fw.status()["version"],
        }
        assert {k for k, v in got["data"].items() if v is not None} == set()
        checked = 0
        for n, path in enumerate(CASES, 1):
            sim.send(path.read_bytes())
            fw.wait(lambda n=n: fw.status()["meter"]["accepted"] == n, what=path.name)
            reading = json.loads(fw.get("/api/v1/reading")[2], parse_float=Decimal)
            raw = json.loads(fw.get("/api/v1/data")[2], parse_float=Decimal)
            data = client(fw.port)["data"]
            expect = want(reading)
            for field, value in data.items():
                e = expect.get(field)
                if field == "external_devices" and not e:
                    assert not value, path.name
                    continue
                assert same(value, e), f"{path.name} {field}: client {value!r}, reading gives {e!r}"
                checked += value is not None
            # the raw JSON: numbers with the reading's digits, the same fields as the client's
            for name, field in (("energy_import_t1_kwh", "total_power_import_t1_kwh"), ("l1_voltage_v", "active_voltage_l1_v"),
                                ("l1_current_a", "active_current_l1_a"), ("gas_m3", "total_gas_m3")):  # fmt: skip
                if name in reading:
                    assert str(raw[field]) == str(reading[name]), (path.name, field)
        assert checked > 150, checked
    finally:
        fw.stop_ok()
        sim.close()


def test_off_by_default_and_404(tmp_path):
    fw = Firmware(tmp_path, "--source", str(CASES[0]))
    try:
        fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="the telegram")
        for path in ("/api", "/api/v1/data"):
            st, headers, body = fw.get(path)
            assert st == 404 and json.loads(body) == {"error": "not found", "status": 404}
    finally:
        fw.stop_ok()
