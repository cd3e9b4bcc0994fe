"""HomeWizard-compatible local API v1 (opt-in, `http.homewizard: true`):
`GET /api` and `GET /api/v1/data` with the field names and units of a
HomeWizard P1 meter (HWE-P1), for the tools that read one: Home Assistant's
HomeWizard integration, evcc, Homey, scripts (docs/RUNTIME.md lists what is
covered). Imported per request by web.api and dropped after, like web.status.

Values come from the reading's exact digits: totals from tariffs, import less
export and kW -> W are done on integers of the fixed-point digits, never on
floats; a field whose readings the meter does not send is left out.
"""

from p1.bodyread import items, text_value
from p1.jsonout import quote

# One long string, not a dict: its short names would stay interned after this
# module is dropped. Each entry `|<field> <op> <reading names>`, in output order:
#   n copy a number, s copy a text, i a text's digits as an integer,
#   t a total if sent, else the sum of the two tariffs,
#   w import less export in kW, as W (one of them is enough),
#   g an M-Bus time stamp as HomeWizard's yymmddhhmmss number.
_FIELDS = (
    "|smr_version i dsmr_version|meter_model s meter|unique_id s equipment_id|active_tariff i tariff"
    "|total_power_import_kwh t energy_import_kwh energy_import_t1_kwh energy_import_t2_kwh"
    "|total_power_import_t1_kwh n energy_import_t1_kwh|total_power_import_t2_kwh n energy_import_t2_kwh"
    "|total_power_export_kwh t energy_export_kwh energy_export_t1_kwh energy_export_t2_kwh"
    "|total_power_export_t1_kwh n energy_export_t1_kwh|total_power_export_t2_kwh n energy_export_t2_kwh"
    "|active_power_w w power_import_kw power_export_kw"
    "|active_power_l1_w w l1_power_import_kw l1_power_export_kw"
    "|active_power_l2_w w l2_power_import_kw l2_power_export_kw"
    "|active_power_l3_w w l3_power_import_kw l3_power_export_kw"
    "|active_voltage_l1_v n l1_voltage_v|active_voltage_l2_v n l2_voltage_v|active_voltage_l3_v n l3_voltage_v"
    "|active_current_l1_a n l1_current_a|active_current_l2_a n l2_current_a|active_current_l3_a n l3_current_a"
    "|voltage_sag_l1_count n l1_voltage_sags|voltage_sag_l2_count n l2_voltage_sags"
    "|voltage_sag_l3_count n l3_voltage_sags|voltage_swell_l1_count n l1_voltage_swells"
    "|voltage_swell_l2_count n l2_voltage_swells|voltage_swell_l3_count n l3_voltage_swells"
    "|any_power_fail_count n power_failures|long_power_fail_count n long_power_failures"
    "|total_gas_m3 n gas_m3|gas_timestamp g gas_timestamp|"
)
# M-Bus readings -> HomeWizard's `external` devices: name, type, unit, time stamp name.
_EXTERNAL = (
    ("gas_m3", "gas_meter", "m3", "gas_timestamp"),
    ("water_m3", "water_meter", "m3", "water_timestamp"),
    ("heat_gj", "heat_meter", "GJ", "heat_timestamp"),
)


def device(app):
    """Yield the JSON of `GET /api`: what the device is."""
    yield '{"product_type": "HWE-P1", "product_name": "P1 meter", "serial": %s, "firmware_version": %s, ' % (
        quote(app.device_id),
        quote(app.version),
    )
    yield '"api_version": "v1"}'


def fixed(t):
    """A number text -> (integer of its digits, decimals): "-1.50" -> (-150, 2)."""
    i = t.find(".")
    if i < 0:
        return int(t), 0
    return int(t[:i] + t[i + 1 :]), len(t) - i - 1


def text(n, d):
    """(integer, decimals) -> the number text: (-150, 2) -> "-1.50", (15, -3) -> "15000"."""
    if d <= 0:
        return str(n * 10**-d)
    s = str(-n if n < 0 else n)
    s = "0" * (d + 1 - len(s)) + s
    return ("-" if n < 0 else "") + s[:-d] + "." + s[-d:]


def _add(a, b, sign=1):
    (x, dx), (y, dy) = fixed(a), fixed(b)
    d = dx if dx > dy else dy
    return x * 10 ** (d - dx) + sign * y * 10 ** (d - dy), d


def _stamp(iso):
    """"2024-01-15T13:00:00+01:00" (the meter's wall clock) -> "240115130000"."""
    return str(int(iso[2:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19]))


def _value(op, args, r):
    """A field's JSON value text from readings `r` (name -> value text), or None."""
    a = r.get(args[0])
    if op == "n":
        return a
    if op == "s":
        return a if a and a[:1] == '"' else None
    if op == "i":
        v = text_value(a) if a else None
        return str(int(v)) if v and v.isdigit() else None
    if op == "g":
        return _stamp(text_value(a)) if a and a[:1] == '"' else None
    b = r.get(args[1])
    if op == "t":
        if a is not None or b is None or r.get(args[2]) is None:
            return a
        return text(*_add(b, r[args[2]]))
    if a is None and b is None:  # "w"
        return None
    n, d = _add(a or "0", b or "0", -1)
    return text(n, d - 3)


def data(app):
    """Yield the JSON of `GET /api/v1/data`: Wi-Fi, then the latest reading's fields."""
    w = app.wifi_status()
    rssi = w.get("rssi")
    strength = None if rssi is None else min(100, max(0, 2 * (rssi + 100)))  # dBm -> %, as phones show it
    yield '{"wifi_ssid": %s, "wifi_strength": %s' % (
        "null" if w.get("ssid") is None else quote(w["ssid"]),
        "null" if strength is None else str(strength),
    )
    s = app.hub.sample
    if s is None:
        yield "}"
        return
    r = {}
    for name, v in items(s.body):
        if v != "null":
            r[name] = v
    i = 0
    while True:
        j = _FIELDS.find("|", i + 1)
        if j < 0:
            break
        f = _FIELDS[i + 1 : j].split(" ")
        i = j
        v = _value(f[1], f[2:], r)
        if v is not None:
            yield ', "%s": %s' % (f[0], v)
    first = True
    for name, kind, unit, ts in _EXTERNAL:
        if name in r and ts in r:  # (HomeWizard's clients need the time stamp)
            yield '%s{"unique_id": "%s", "type": "%s", "timestamp": %s, "value": %s, "unit": "%s"}' % (
                ', "external": [' if first else ", ",
                name,
                kind,
                _stamp(text_value(r[ts])),
                r[name],
                unit,
            )
            first = False
    yield "}" if first else "]}"
