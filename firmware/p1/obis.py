"""The OBIS table: one line per known object, looked up by code.

Each entry is `OBIS: (name, unit, kind)`. `name` is the stable snake_case key
every output uses (HTTP, MQTT, Home Assistant); `unit` is the one normalised
unit of that reading (None for unit-less kinds); `kind` says how to read it:

- "cum"  cumulative counter (never decreases: HA `total_increasing`)
- "inst" instantaneous measurement (HA `measurement`)
- "int"  plain integer (counts, states)
- "str"  text or hex as sent
- "ts"   time stamp
- "mbus_type", "mbus" M-Bus channel device type and reading; the reading's
  name comes from the channel's device type (see `MBUS`)

M-Bus objects are keyed `0-n:...`: any channel 1-4 looks the same up.
Line order in a telegram never matters; unknown codes are kept by the parser
but get no name.
"""

TABLE = {
    "0-0:1.0.0": ("timestamp", None, "ts"),
    "1-3:0.2.8": ("dsmr_version", None, "str"),
    "0-0:96.1.1": ("equipment_id", None, "str"),
    "0-0:96.1.0": ("meter_serial", None, "str"),
    "0-0:96.14.0": ("tariff", None, "str"),
    # Cumulative energy (SK 13-1 and DSMR).
    "1-0:1.8.0": ("energy_import_kwh", "kWh", "cum"),
    "1-0:2.8.0": ("energy_export_kwh", "kWh", "cum"),
    "1-0:3.8.0": ("reactive_energy_import_kvarh", "kvarh", "cum"),
    "1-0:4.8.0": ("reactive_energy_export_kvarh", "kvarh", "cum"),
    "1-0:1.8.1": ("energy_import_t1_kwh", "kWh", "cum"),
    "1-0:1.8.2": ("energy_import_t2_kwh", "kWh", "cum"),
    "1-0:2.8.1": ("energy_export_t1_kwh", "kWh", "cum"),
    "1-0:2.8.2": ("energy_export_t2_kwh", "kWh", "cum"),
    # Total power.
    "1-0:1.7.0": ("power_import_kw", "kW", "inst"),
    "1-0:2.7.0": ("power_export_kw", "kW", "inst"),
    "1-0:3.7.0": ("reactive_power_import_kvar", "kvar", "inst"),
    "1-0:4.7.0": ("reactive_power_export_kvar", "kvar", "inst"),
    # Per phase.
    "1-0:21.7.0": ("l1_power_import_kw", "kW", "inst"),
    "1-0:41.7.0": ("l2_power_import_kw", "kW", "inst"),
    "1-0:61.7.0": ("l3_power_import_kw", "kW", "inst"),
    "1-0:22.7.0": ("l1_power_export_kw", "kW", "inst"),
    "1-0:42.7.0": ("l2_power_export_kw", "kW", "inst"),
    "1-0:62.7.0": ("l3_power_export_kw", "kW", "inst"),
    "1-0:23.7.0": ("l1_reactive_power_import_kvar", "kvar", "inst"),
    "1-0:43.7.0": ("l2_reactive_power_import_kvar", "kvar", "inst"),
    "1-0:63.7.0": ("l3_reactive_power_import_kvar", "kvar", "inst"),
    "1-0:24.7.0": ("l1_reactive_power_export_kvar", "kvar", "inst"),
    "1-0:44.7.0": ("l2_reactive_power_export_kvar", "kvar", "inst"),
    "1-0:64.7.0": ("l3_reactive_power_export_kvar", "kvar", "inst"),
    "1-0:32.7.0": ("l1_voltage_v", "V", "inst"),
    "1-0:52.7.0": ("l2_voltage_v", "V", "inst"),
    "1-0:72.7.0": ("l3_voltage_v", "V", "inst"),
    "1-0:31.7.0": ("l1_current_a", "A", "inst"),
    "1-0:51.7.0": ("l2_current_a", "A", "inst"),
    "1-0:71.7.0": ("l3_current_a", "A", "inst"),
    # DSMR events.
    "0-0:96.7.21": ("power_failures", None, "int"),
    "0-0:96.7.9": ("long_power_failures", None, "int"),
    "1-0:32.32.0": ("l1_voltage_sags", None, "int"),
    "1-0:52.32.0": ("l2_voltage_sags", None, "int"),
    "1-0:72.32.0": ("l3_voltage_sags", None, "int"),
    "1-0:32.36.0": ("l1_voltage_swells", None, "int"),
    "1-0:52.36.0": ("l2_voltage_swells", None, "int"),
    "1-0:72.36.0": ("l3_voltage_swells", None, "int"),
    "0-0:96.13.0": ("text_message", None, "str"),
    "0-0:96.3.10": ("breaker_state", None, "int"),
    # M-Bus channels (gas, water, heat).
    "0-n:24.1.0": ("mbus_type", None, "mbus_type"),
    "0-n:96.1.0": (None, None, "str"),
    "0-n:96.1.1": (None, None, "str"),
    "0-n:24.4.0": (None, None, "int"),  # valve position
    "0-n:24.2.1": (None, None, "mbus"),
    "0-n:24.2.3": (None, None, "mbus"),
    "0-n:24.3.0": (None, None, "mbus"),  # DSMR 2/3: (ts)(..)(..)(..)(obis)(unit)(value)
}

# M-Bus device type -> (reading name, unit, time stamp name).
MBUS = {
    3: ("gas_m3", "m3", "gas_timestamp"),
    4: ("heat_gj", "GJ", "heat_timestamp"),
    7: ("water_m3", "m3", "water_timestamp"),
}

# Unit as a meter writes it -> decimal shift into the table's unit. Exact
# spellings only: only powers of ten, and never by case-folding, since "mWh"
# (milli) and "MWh" (mega) differ by 10**9. Meters write kvarh, kVArh, kVarh
# ... for the same unit; a unit not listed is reported, never guessed.
UNITS = {
    "kWh": {"kWh": 0, "kwh": 0, "KWH": 0, "Wh": 3, "wh": 3, "WH": 3, "MWh": -3},
    "kW": {"kW": 0, "kw": 0, "KW": 0, "W": 3, "w": 3, "MW": -3},
    "kvarh": {"kvarh": 0, "kVArh": 0, "kVarh": 0, "KVARH": 0, "varh": 3, "VArh": 3, "Varh": 3, "VARH": 3},
    "kvar": {"kvar": 0, "kVAr": 0, "kVar": 0, "KVAR": 0, "var": 3, "VAr": 3, "Var": 3, "VAR": 3},
    "V": {"V": 0, "v": 0},
    "A": {"A": 0, "a": 0},
    "m3": {"m3": 0, "M3": 0, "m\xb3": 0},
    "GJ": {"GJ": 0, "gj": 0, "Gj": 0},
}


def unit_shift(unit, written):
    """Decimal shift from the unit a meter `written` into table unit `unit`; None if foreign."""
    return UNITS[unit].get(written)


def _by_name():
    out = {}
    for code in TABLE:
        name, unit, kind = TABLE[code]
        if name and kind != "mbus_type":
            out[name] = (code, unit, kind)
    for t in MBUS:
        name, unit, ts_name = MBUS[t]
        out[name] = ("0-n:24.2.1", unit, "cum")
        out[ts_name] = ("0-n:24.2.1", None, "ts")
    return out


BY_NAME = _by_name()


def lookup(code):
    """The table entry for an OBIS code (M-Bus channels as 0-n), or None."""
    e = TABLE.get(code)
    if e is None and code[:2] == "0-" and code[2:4] != "0:":
        e = TABLE.get("0-n" + code[code.find(":") :])
    return e
