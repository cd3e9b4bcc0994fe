"""Health alarms on the host board, as a user sees them: in /api/v1/status and
retained on MQTT (`<base>/alarms`), from a loopback meter the test drives."""

from __future__ import annotations

import json

import pytest
from conftest import TELEGRAMS_DIR
from mosquitto import Mosquitto, Subscriber, available
from runtime_harness import Firmware, MeterServer

TELEGRAM = (TELEGRAMS_DIR / "nl-dsmr5-iskra-01.txt").read_bytes()


def bad_crc(t: bytes) -> bytes:
    """The telegram with one digit of its CRC changed."""
    i = t.rindex(b"!") + 1
    return t[:i] + (b"0" if t[i : i + 1] != b"0" else b"1") + t[i + 1 :]


def alarms(fw: Firmware):
    return fw.status()["alarms"]


@pytest.mark.skipif(not available(), reason="mosquitto not installed (make setup)")
def test_alarms_in_status_and_on_mqtt(tmp_path):
    cfg = {"alarms": {"no_telegram_s": 1, "crc_error_pct": 20}}
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, ["p1/+/alarms"])
        sim = MeterServer()
        fw = Firmware(tmp_path, "--source", sim.source, "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
                      config=json.dumps(cfg))  # fmt: skip
        try:
            sim.accept()
            s = fw.status()
            assert (s["watchdog_s"], s["service_down"]) == (0, None)  # the host board has none
            assert s["config"]["alarms"] == {"crc_error_pct": 20, "heap_floor": 12288, "no_telegram_s": 1}
            # no telegram for a second (since boot): the alarm, on the page and retained on MQTT
            fw.wait(lambda: alarms(fw) == ["no_telegram"], what="no_telegram")
            topic = fw.status()["mqtt"]["base_topic"] + "/alarms"
            assert sub.wait(lambda: sub.on(topic)[-1:] == [b'["no_telegram"]'])
            sim.send(TELEGRAM)
            fw.wait(lambda: alarms(fw) == [], what="no alarm")
            assert sub.wait(lambda: sub.on(topic)[-1:] == [b"[]"])
            # 3 of 4 telegrams with a bad CRC: at least 20 %
            for _ in range(3):
                sim.send(bad_crc(TELEGRAM))
            fw.wait(lambda: fw.status()["meter"]["rejected_crc"] == 3, what="3 CRC errors")
            fw.wait(lambda: "crc_errors" in alarms(fw), what="crc_errors")
            assert sub.wait(lambda: b"crc_errors" in b"".join(sub.on(topic)[-1:]))
            # a subscriber that comes later gets the present state (retained)
            late = Subscriber(broker, [topic])
            assert late.wait(lambda: late.messages[-1:] != [])
            assert late.messages[-1][2] is True and b"crc_errors" in late.messages[-1][1]
            late.close()
        finally:
            fw.stop()
            sim.close()
            sub.close()


def test_low_heap_under_micropython(tmp_path):
    """The Unix port has a fixed heap like the device: a floor above it raises low_heap;
    its clock is set (time_not_set stays off)."""
    sim = MeterServer()
    cfg = {"alarms": {"no_telegram_s": 0, "heap_floor": 1048576}}
    fw = Firmware(tmp_path, "--source", sim.source, "--mp", config=json.dumps(cfg))
    try:
        s = fw.status()
        assert s["alarms"] == ["low_heap"] and s["free_heap"] < 1048576
    finally:
        fw.stop()
        sim.close()
