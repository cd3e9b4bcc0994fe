"""The OBIS table: one line per known object, looked up by code or by name.

Strategy: the table is one bytes constant, not a dict of tuples. Imported from
an .mpy file a dict of 60 entries costs ~7.5 KB of heap on the device (every
key, name and tuple is its own object); the same table as one bytes object
costs ~1.8 KB. Lookups are `find()` in it: C speed, and they allocate nothing
but the result.

Each line is `<OBIS> <kind><unit> <name>`:

- kind: c cumulative counter (never decreases: HA `total_increasing`),
  i instantaneous measurement (HA `measurement`), n plain integer (counts,
  states), s text or hex as sent, t time stamp, y M-Bus device type, m M-Bus
  reading (its name comes from the channel's device type, see MBUS)
- unit: a letter of `_UNITS` (E kWh, P kW, R kvarh, Q kvar, V V, A A, G m3,
  J GJ) or `-` for unit-less kinds
- name: the stable snake_case key every output uses (HTTP, MQTT, Home
  Assistant); `-` for objects that are checked but not named

M-Bus objects are written `0-n:...`: any channel 1-9 looks the same up.
Line order in a telegram never matters; unknown codes are kept by the
parser but get no name. Lookups by name and with str codes (the general
decoder, metrics) are in `p1.table`, imported only by them; discovery's
in `net.ha`.
"""

T = (
    b"\n0-0:1.0.0 t- timestamp"
    b"\n1-3:0.2.8 s- dsmr_version"
    b"\n0-0:96.1.1 s- equipment_id"
    b"\n0-0:96.1.0 s- meter_serial"
    b"\n0-0:96.14.0 s- tariff"
    # Cumulative energy (SK 13-1 and DSMR).
    b"\n1-0:1.8.0 cE energy_import_kwh"
    b"\n1-0:2.8.0 cE energy_export_kwh"
    b"\n1-0:3.8.0 cR reactive_energy_import_kvarh"
    b"\n1-0:4.8.0 cR reactive_energy_export_kvarh"
    b"\n1-0:1.8.1 cE energy_import_t1_kwh"
    b"\n1-0:1.8.2 cE energy_import_t2_kwh"
    b"\n1-0:2.8.1 cE energy_export_t1_kwh"
    b"\n1-0:2.8.2 cE energy_export_t2_kwh"
    # Total power.
    b"\n1-0:1.7.0 iP power_import_kw"
    b"\n1-0:2.7.0 iP power_export_kw"
    b"\n1-0:3.7.0 iQ reactive_power_import_kvar"
    b"\n1-0:4.7.0 iQ reactive_power_export_kvar"
    # Per phase.
    b"\n1-0:21.7.0 iP l1_power_import_kw"
    b"\n1-0:41.7.0 iP l2_power_import_kw"
    b"\n1-0:61.7.0 iP l3_power_import_kw"
    b"\n1-0:22.7.0 iP l1_power_export_kw"
    b"\n1-0:42.7.0 iP l2_power_export_kw"
    b"\n1-0:62.7.0 iP l3_power_export_kw"
    b"\n1-0:23.7.0 iQ l1_reactive_power_import_kvar"
    b"\n1-0:43.7.0 iQ l2_reactive_power_import_kvar"
    b"\n1-0:63.7.0 iQ l3_reactive_power_import_kvar"
    b"\n1-0:24.7.0 iQ l1_reactive_power_export_kvar"
    b"\n1-0:44.7.0 iQ l2_reactive_power_export_kvar"
    b"\n1-0:64.7.0 iQ l3_reactive_power_export_kvar"
    b"\n1-0:32.7.0 iV l1_voltage_v"
    b"\n1-0:52.7.0 iV l2_voltage_v"
    b"\n1-0:72.7.0 iV l3_voltage_v"
    b"\n1-0:31.7.0 iA l1_current_a"
    b"\n1-0:51.7.0 iA l2_current_a"
    b"\n1-0:71.7.0 iA l3_current_a"
    # DSMR events.
    b"\n0-0:96.7.21 n- power_failures"
    b"\n0-0:96.7.9 n- long_power_failures"
    b"\n1-0:32.32.0 n- l1_voltage_sags"
    b"\n1-0:52.32.0 n- l2_voltage_sags"
    b"\n1-0:72.32.0 n- l3_voltage_sags"
    b"\n1-0:32.36.0 n- l1_voltage_swells"
    b"\n1-0:52.36.0 n- l2_voltage_swells"
    b"\n1-0:72.36.0 n- l3_voltage_swells"
    b"\n0-0:96.13.0 s- text_message"
    b"\n0-0:96.3.10 n- breaker_state"
    # M-Bus channels (gas, water, heat).
    b"\n0-n:24.1.0 y- -"
    b"\n0-n:96.1.0 s- -"
    b"\n0-n:96.1.1 s- -"
    b"\n0-n:24.4.0 n- -"  # valve position
    b"\n0-n:24.2.1 m- -"
    b"\n0-n:24.2.3 m- -"
    b"\n0-n:24.3.0 m- -"  # DSMR 2/3: (ts)(..)(..)(..)(obis)(unit)(value)
    b"\n"
)

# M-Bus device type -> (reading name, unit, time stamp name). Without a type
# line the unit decides, in MBUS_ORDER (m3 is gas before water).
MBUS = {
    3: ("gas_m3", "m3", "gas_timestamp"),
    4: ("heat_gj", "GJ", "heat_timestamp"),
    7: ("water_m3", "m3", "water_timestamp"),
}
MBUS_ORDER = (3, 4, 7)

# Unit letter -> the table's unit, then every spelling a meter may write with
# the decimal shift into that unit. Exact spellings only: only powers of ten,
# and never by case-folding, since "mWh" (milli) and "MWh" (mega) differ by
# 10**9. A unit not listed is reported, never guessed.
UNITS = (
    b"\nE kWh|kWh 0|kwh 0|KWH 0|Wh 3|wh 3|WH 3|MWh -3|"
    b"\nP kW|kW 0|kw 0|KW 0|W 3|w 3|MW -3|"
    b"\nR kvarh|kvarh 0|kVArh 0|kVarh 0|KVARH 0|varh 3|VArh 3|Varh 3|VARH 3|"
    b"\nQ kvar|kvar 0|kVAr 0|kVar 0|KVAR 0|var 3|VAr 3|Var 3|VAR 3|"
    b"\nV V|V 0|v 0|"
    b"\nA A|A 0|a 0|"
    b"\nG m3|m3 0|M3 0|m\xb3 0|"
    b"\nJ GJ|GJ 0|gj 0|Gj 0|"
    b"\n"
)


def find(code):
    """Index in T of the line of `code` (bytes: `1-0:1.8.0`, M-Bus `0-1:...`), or -1.

    The line's kind letter is at `i + len(code) + 1` (for M-Bus codes of
    channels 1-9 too). Allocates nothing but an M-Bus code's suffix.
    """
    mbus = len(code) > 4 and code.startswith(b"0-") and not code.startswith(b"0:", 2)
    if mbus:  # any channel: look up `:C.D.E` on the `0-n:` lines
        c = code.find(b":")
        if c < 0:
            return -1
        code = code[c:]
    i = 0
    while True:
        i = T.find(code, i + 1)
        if i < 0:
            return -1
        if T.startswith(b" ", i + len(code)):  # the whole code field of a line
            if mbus and T.startswith(b"\n0-n", i - 4):
                return i - 3
            if not mbus and T[i - 1] == 0x0A:
                return i


def unit_line(letter):
    """Index of the `UNITS` line of unit `letter` (an int), -1 for none."""
    return UNITS.find(bytes((0x0A, letter, 0x20)))


def shift(u, written):
    """Decimal shift of unit spelling `written` (bytes) on UNITS line `u`; None if foreign."""
    end = UNITS.find(b"\n", u + 1)
    i = UNITS.find(b"|" + written + b" ", u, end)
    if i < 0:
        return None
    j = i + len(written) + 2
    return int(UNITS[j : UNITS.find(b"|", j)])
