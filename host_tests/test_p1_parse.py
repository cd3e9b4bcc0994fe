"""Decoding: exact values of recorded telegrams, names, units, time stamps, bad lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p1util import TELEGRAMS, recorded
from p1.jsonout import dumps
from p1.parse import parse
from p1.readings import readings
from p1.values import Num, fixed, parse_offset, stamp


def decode(name: str, std_offset: int = 120):
    return parse((TELEGRAMS / name).read_bytes(), "ok", std_offset)


def named(name: str, std_offset: int = 120) -> dict[str, str]:
    r = readings(decode(name, std_offset))
    return {k: (str(v) if isinstance(v, Num) else v) for k, v in r.items()}


def test_finnish_set_of_the_e360_exactly():
    r = named("se-lg-e360-01.txt")
    assert r == {
        "timestamp": "2021-02-22T16:19:00+02:00",
        "meter": "LGF5E360",
        "energy_import_kwh": "896.020",
        "energy_export_kwh": "48.792",
        "reactive_energy_import_kvarh": "518.309",
        "reactive_energy_export_kvarh": "23.732",
        "power_import_kw": "0.000",
        "power_export_kw": "0.020",
        "reactive_power_import_kvar": "0.000",
        "reactive_power_export_kvar": "0.308",
        "l1_power_import_kw": "0.000",
        "l1_power_export_kw": "0.012",
        "l2_power_import_kw": "0.000",
        "l2_power_export_kw": "0.071",
        "l3_power_import_kw": "0.063",
        "l3_power_export_kw": "0.000",
        "l1_reactive_power_import_kvar": "0.000",
        "l1_reactive_power_export_kvar": "0.146",
        "l2_reactive_power_import_kvar": "0.000",
        "l2_reactive_power_export_kvar": "0.135",
        "l3_reactive_power_import_kvar": "0.000",
        "l3_reactive_power_export_kvar": "0.026",
        "l1_voltage_v": "230.1",
        "l2_voltage_v": "232.2",
        "l3_voltage_v": "230.4",
        "l1_current_a": "0.6",
        "l2_current_a": "0.6",
        "l3_current_a": "0.3",
    }


def test_units_are_kept_as_written_and_normalised_in_readings():
    t = decode("se-sagemcom-ell5-01.txt")
    assert t.objects["1-0:3.8.0"][0].unit == "kvarh"
    assert decode("se-lg-e360-01.txt").objects["1-0:3.8.0"][0].unit == "kVArh"
    assert named("se-lg-e360-01.txt")["reactive_energy_import_kvarh"] == "518.309"
    r = readings(t)
    assert r["reactive_energy_export_kvarh"].unit == "kvarh"


def test_wh_and_w_become_exact_kwh_and_kw():
    r = named("at-sagemcom-t210dr-01.txt")
    assert r["energy_import_kwh"] == "6545.766"
    assert r["energy_import_t1_kwh"] == "5017.120"
    assert r["power_import_kw"] == "0.286"
    assert r["reactive_energy_export_kvarh"] == "3897.726"
    assert r["reactive_power_export_kvar"] == "0.166"


def test_unit_spellings_are_exact_never_case_folded():
    t = parse(
        b"/X\r\n\r\n1-0:1.8.0(00012.345*MWh)\r\n1-0:2.8.0(00012.345*mWh)\r\n1-0:3.8.0(1.5*kVarh)\r\n!", "none"
    )
    r = readings(t)
    assert str(r["energy_import_kwh"]) == "12345"  # MWh -> kWh: x1000, exact
    assert "energy_export_kwh" not in r  # milli-watt-hours are not mega: reported, not guessed
    assert t.errors == [("1-0:2.8.0(00012.345*mWh)", "unit 'mWh' is not kWh")]
    assert str(r["reactive_energy_import_kvarh"]) == "1.5"


def test_large_counter_survives_exactly():
    t = parse(b"/X\r\n\r\n1-0:1.8.0(99999999.999*kWh)\r\n!", "none")
    v = readings(t)["energy_import_kwh"]
    assert (v.value, v.decimals, str(v)) == (99999999999, 3, "99999999.999")


def test_dsmr5_tariffs_gas_and_events():
    r = named("nl-dsmr5-iskra-01.txt", 60)
    assert r["energy_import_t1_kwh"] == "4.426"
    assert r["tariff"] == "0002"
    assert r["power_failures"] == 13
    assert r["l1_current_a"] == "0.48"
    assert r["gas_m3"] == "0.107"
    assert r["gas_timestamp"] == "2017-01-02T16:10:05+01:00"
    assert r["equipment_id"] == "4B384547303034303436333935353037"


def test_dead_mbus_channel_is_skipped_and_live_one_named():
    r = named("nl-dsmr5-iskra-am550-02.txt", 60)
    assert r["gas_m3"] == "246.138"
    assert r["gas_timestamp"] == "2020-04-26T22:30:01+02:00"
    t = decode("nl-dsmr5-iskra-am550-02.txt", 60)
    assert t.objects["0-1:24.2.1"] == ["1970-01-01T01:00:00+01:00", 0]


def test_water_and_heat_channels_by_device_type():
    r = named("be-fluvius-emucs-01.txt", 60)
    assert r["gas_m3"] == "112.384"
    assert r["water_m3"] == "872.234"
    assert named("nl-nwa-warmtelink-01.txt", 60)["heat_gj"] == "240.860"


def test_failure_log_buffer_keeps_every_group():
    t = decode("nl-dsmr42-kaifa-01.txt", 60)
    log = t.objects["1-0:99.97.0"]
    assert log[0] == 3 and log[1] == "0-0:96.7.19"
    assert log[2] == "2000-01-04T18:03:20+01:00"
    assert log[3] == Num(237126, 0, "s")
    assert len(log) == 8


def test_summer_and_winter_offsets_follow_the_flag_and_the_zone():
    assert stamp("231125143010W", 120) == "2023-11-25T14:30:10+02:00"
    assert stamp("230625143010S", 120) == "2023-06-25T14:30:10+03:00"
    assert stamp("230625143010S", 60) == "2023-06-25T14:30:10+02:00"
    assert stamp("000101010000W", 120) == "2000-01-01T01:00:00+02:00"
    assert stamp("121030140000", 120) == "2012-10-30T14:00:00"
    assert stamp("231325143010W", 120) is None
    assert parse_offset("+01:00") == 60 and parse_offset("-0330") == -210
    with pytest.raises(ValueError):
        parse_offset("01:00")


def test_unknown_codes_are_kept_and_f_group_dropped():
    t = parse(b"/X\r\n\r\n1-0:1.8.0*255(000123.456*kWh)\r\n9-9:99.99.9(abc)\r\n!", "none")
    assert t.objects["1-0:1.8.0"] == [Num(123456, 3, "kWh")]
    assert t.objects["9-9:99.99.9"] == ["abc"]
    assert t.errors == []


def test_malformed_lines_are_reported_and_the_rest_kept():
    body = (
        b"/X\r\n\r\n"
        b"1-0:1.8.0(00001.000*kWh)\r\n"
        b"1-0:2.8.0(0000x.000*kWh)\r\n"
        b"garbage line\r\n"
        b"1-0:32.7.0(230.1*V\r\n"
        b"1-x:1.7.0(1)\r\n"
        b"1-0:31.7.0(5.0*V)\r\n"
        b"1-0:1.8.0(00002.000*kWh)\r\n"
        b"0-0:1.0.0(231399999999W)\r\n"
        b"1-0:52.7.0(231.0*V)\r\n!"
    )
    t = parse(body, "none")
    assert list(t.objects) == ["1-0:1.8.0", "1-0:52.7.0"]
    assert t.objects["1-0:1.8.0"] == [Num(1000, 3, "kWh")]
    reasons = [why for _, why in t.errors]
    assert reasons == [
        "bad number",
        "no value group",
        "unbalanced parentheses",
        "bad OBIS code",
        "unit 'V' is not A",
        "duplicate object",
        "bad time stamp",
    ]
    assert t.errors[0][0] == "1-0:2.8.0(0000x.000*kWh)"


def test_dsmr3_gas_value_on_its_own_line():
    t = parse(b"/X\r\n\r\n0-1:24.3.0(121030140000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n(00000.000)\r\n!", "none")
    assert t.objects["0-1:24.3.0"][-1] == Num(0, 3, "")
    assert len(t.objects["0-1:24.3.0"]) == 7
    r = readings(t)
    assert str(r["gas_m3"]) == "0.000" and r["gas_timestamp"] == "2012-10-30T14:00:00"


def test_control_byte_in_ident_survives():
    assert decode("ie-iskra-ie5t-01.txt").ident == "ISk5\x02MIE5T-200"


def test_non_ascii_noise_never_crashes():
    t = parse(
        b"/X\xe9\r\n\r\n1-0:1.8.0(\xff*kWh)\r\n0-0:96.7.21(\xb2)\r\n1-0:2.8.0(1\xb2.0*kWh)\r\n"
        b"0-1:24.2.1(\xb2)(\xb2)\r\n!",
        "bad",
    )
    assert t.ident == "X\xe9"
    assert [why for _, why in t.errors] == ["bad number", "not an integer", "bad number", "bad time stamp"]
    assert list(t.objects) == []
    assert dumps({"i": t.ident}) == '{"i": "X\\u00e9"}'


@pytest.mark.parametrize(
    "text,expected",
    [
        ("00012345.678", (12345678, 3)),
        ("-001.2", (-12, 1)),
        ("000", (0, 0)),
        (".5", (5, 1)),
        ("0.48", (48, 2)),
        ("1.", None),
        ("", None),
        ("1-2", None),
        ("+7", (7, 0)),
        ("1.2.3", None),
    ],
)
def test_fixed_point(text, expected):
    assert fixed(text) == expected


@pytest.mark.parametrize(
    "num,text",
    [
        (Num(12345678, 3), "12345.678"),
        (Num(0, 3), "0.000"),
        (Num(-12, 1), "-1.2"),
        (Num(5, 3), "0.005"),
        (Num(7, 0), "7"),
        (Num(-5, 3), "-0.005"),
    ],
)
def test_num_text_has_exactly_the_meters_digits(num, text):
    assert str(num) == text


def test_json_refuses_floats_and_writes_exact_numbers():
    assert dumps({"a": Num(896020, 3, "kWh"), "b": [1, None, True]}) == '{"a": 896.020, "b": [1, null, true]}'
    with pytest.raises(TypeError):
        dumps({"a": 1.5})


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.name)
def test_every_recorded_telegram_decodes_without_errors(path):
    t = parse(path.read_bytes(), "ok")
    assert t.errors == []
    assert t.ident and len(t.objects) >= 5
    r = readings(t)
    assert r["meter"] == t.ident and r["timestamp"]


@settings(max_examples=400, deadline=None)
@given(
    code=st.sampled_from(["1-0:1.8.0", "1-0:32.7.0", "0-0:96.7.21", "0-0:96.14.0", "0-0:1.0.0", "1-0:3.7.0"]),
    group=st.text(alphabet="0123456789.+-*kWhVArvsS²()", max_size=16),
)
def test_fast_path_equals_the_general_path(code, group):
    """The single-group fast path must give exactly what the general decoder gives."""
    import p1.parse as parse_mod

    raw = ("/X\r\n\r\n%s(%s)\r\n!" % (code, group)).encode("latin-1")
    fast = parse(raw, "none")
    real = parse_mod._fast_value
    parse_mod._fast_value = lambda g, entry, std_offset: None
    try:
        slow = parse(raw, "none")
    finally:
        parse_mod._fast_value = real
    assert fast.objects == slow.objects
    assert fast.errors == slow.errors


@settings(max_examples=300, deadline=None)
@given(
    noise=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"/", b"!", b"\r\n", b"(", b")", b"*", b"1-0:1.8.0(", b"0-1:24.2.1(", b"W)", b"kWh)"]),
        ),
        max_size=60,
    )
)
def test_any_bytes_never_crash_the_parser(noise):
    """Line noise of any shape: the framer and the decoder never raise, every
    value they produce is of a known type, and JSON output stays possible."""
    from p1.framer import Framer

    data = b"".join(noise)
    fr = Framer(512)
    fr.feed(data)
    frames = []
    while (f := fr.next_frame()) is not None:
        frames.append((bytes(f), fr.crc))
    if (f := fr.end()) is not None:
        frames.append((bytes(f), fr.crc))
    for raw in [data] + [f for f, _ in frames]:
        t = parse(raw, "bad")
        for vals in t.objects.values():
            assert all(isinstance(v, (Num, int, str)) for v in vals)
        dumps(readings(t))
    c = fr.counters
    assert c["telegrams"] == len(frames)
    assert c["skipped_bytes"] <= len(data)
