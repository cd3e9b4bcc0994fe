"""The power-tariff monitor (firmware/tariff.py; docs/TARIFF.md): the rule's filters,
the month's best periods (one per day), the tariff's mean of the top N, the running
average and its projection; host_tests/mp/tariff_cases.py on CPython and under the
Unix-port MicroPython, then over HTTP and MQTT on the running firmware."""

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
import tariff_cases  # noqa: E402


@pytest.mark.parametrize("case", tariff_cases.CASES, ids=lambda f: f.__name__[5:])
def test_tariff(case, tmp_path):
    case(str(tmp_path))


def test_tariff_under_micropython(tmp_path):
    run_cases_under_micropython("tariff", tmp_path)


def test_rule_is_checked_in_the_config():
    _, errors = config.validate({"tariff": {"period": "day", "hours": "7-25", "months": "11-3", "top": 9}})
    assert errors == [
        "config: tariff.hours: expected 0..24-0..24, using \"0-24\"",
        "config: tariff.period: hour or 15min, using \"hour\"",
        "config: tariff.top: out of range 1..5, using 1",
    ]


@pytest.mark.skipif(not available(), reason="mosquitto not installed")
def test_tariff_over_http_and_mqtt(tmp_path):
    cfg = {"tariff": {"period": "15min", "top": 3, "distinct_days": False}}
    with Mosquitto(tmp_path) as broker:
        sub = Subscriber(broker, ["p1/+/tariff"])
        fw = Firmware(tmp_path, "--interval", "0.02", "--step", "60", "--mqtt", broker.url, config=json.dumps(cfg))
        try:

            def three():
                st, _, b = fw.get("/api/v1/tariff")
                if st != 200:
                    return None
                r = json.loads(b)
                return r if len(r["peaks"]) >= 3 else None

            r = fw.wait(three, 60, "three closed quarter hours")
            assert r["rule"] == dict(config.DEFAULTS["tariff"], **cfg["tariff"])
            ws = [p["average_w"] for p in r["peaks"]]
            assert ws == sorted(ws, reverse=True) and r["tariff_w"] == sum(ws[:3]) // 3
            assert r["15min"]["elapsed_s"] < 900 and set(r["hour"]) == {"start", "elapsed_s", "average_w", "projected_w"}
            assert sub.wait(lambda: sub.on(sub.messages[0][0]) if sub.messages else False, 30)
            m = json.loads(sub.messages[-1][1])
            assert m["rule"] == r["rule"] and "tariff_w" in m
        finally:
            sub.close()
            fw.stop()
