"""End to end over loopback sockets: simulator -> host-board firmware -> HTTP,
SSE and the raw telegram server. Values must equal, exactly, what the simulator
wrote; noise must show up in counters, never as a value."""

from __future__ import annotations

import signal
import socket
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from runtime_harness import REPO, Firmware, MeterServer, SseClient, exact_json

sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "firmware"))

from p1.table import by_name  # noqa: E402
from simulate import Meter  # noqa: E402

SKIP = {"timestamp", "meter", "age_s"}


def check_values(reading: dict, expected: dict[str, str]) -> int:
    """Every named numeric reading equals the simulator's text; returns how many."""
    n = 0
    for name, value in reading.items():
        if name in SKIP:
            continue
        obis, _unit, kind = by_name(name)
        if kind == "ts":
            continue  # time stamps are converted to ISO 8601
        if obis.startswith("0-n:"):  # M-Bus: whichever channel carries it
            obis = next(k for k in expected if k.startswith("0-") and k.endswith(obis[3:]))
        assert obis in expected, f"{name} ({obis}) was not in the telegram"
        want = expected[obis]
        if isinstance(value, int):  # integer counters (00004) and whole numbers
            assert value == int(want), f"{name}: firmware {value!r} != simulator {want!r}"
        else:
            assert value == want, f"{name}: firmware {value!r} != simulator {want!r}"
        n += 1
    return n


def accepted(fw: Firmware) -> int:
    return int(fw.status()["meter"]["accepted"])


@pytest.mark.parametrize("dialect", ["fi", "dsmr5"])
def test_values_telegram_sse_raw_exact(tmp_path, dialect):
    meter = Meter(seed=7, dialect=dialect)
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source)
    try:
        sim.accept()
        assert fw.get("/api/v1/reading")[0] == 503
        assert fw.get("/api/v1/telegram")[0] == 503
        sse = SseClient(fw.port)
        raws = [socket.create_connection(("127.0.0.1", fw.raw_port)) for _ in range(2)]
        fw.wait(lambda: fw.status()["raw_tcp"]["clients"] == 2 and fw.status()["http"]["streams"] == 1,
                what="clients")  # fmt: skip
        sent = []
        for i in range(5):
            data, clean = meter.emit()
            assert clean
            sim.send(data)
            sent.append(data)
            fw.wait(lambda: accepted(fw) == i + 1, what=f"telegram {i + 1}")
            st, reading = fw.json("/api/v1/reading")
            assert st == 200
            assert list(reading)[:3] == ["timestamp", "meter", "age_s"]
            assert check_values(reading, meter.expected()) >= 10
            st, headers, body = fw.get("/api/v1/telegram")
            assert st == 200 and headers["content-type"].startswith("text/plain")
            assert body == data
            metrics = fw.get("/metrics")[2].decode()
            name = "energy_import_kwh" if dialect == "fi" else "energy_import_t1_kwh"
            obis = by_name(name)[0]
            line = f'p1_reading{{name="{name}",obis="{obis}",unit="kWh"}} {meter.expected()[obis]}'
            assert line in metrics.splitlines()
            meter.step(10)
        fw.wait(lambda: len(sse.events) >= 5, what="5 SSE events")
        assert [e[0] for e in sse.events] == ["reading"] * 5
        assert [e[1] for e in sse.events] == ["1", "2", "3", "4", "5"]
        for (_, _, data), tg in zip(sse.events, sent):
            ev = exact_json(data)
            assert ev["meter"] and ev["timestamp"]
        last = exact_json(sse.events[-1][2])
        check_values(last, meter.expected())
        want = b"".join(sent)
        for c in raws:
            c.settimeout(5)
            got = b""
            while len(got) < len(want):
                got += c.recv(65536)
            assert got == want
            c.close()
        sse.close()
        fw.wait(lambda: fw.status()["http"]["streams"] == 0, what="SSE unsubscribe")
        fw.wait(lambda: fw.status()["subscribers"]["queues"] == [], what="subscribers gone")
    finally:
        rc = fw.stop()
        sim.close()
    assert rc == 0
    assert "Traceback" not in fw.stderr()


def test_noise_counted_never_a_value(tmp_path):
    meter = Meter(seed=3, noise=0.5)
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source)
    try:
        sim.accept()
        clean_n = 0
        kinds = set()
        i = 0
        clean = False
        while i < 40 or not clean:
            data, clean = meter.emit()
            kinds.add(meter.last_noise)
            sim.send(data)
            if clean:
                clean_n += 1
                fw.wait(lambda: accepted(fw) == clean_n, what=f"clean telegram {clean_n}")
                st, reading = fw.json("/api/v1/reading")
                check_values(reading, meter.expected())
                assert fw.get("/api/v1/telegram")[2] == data[data.index(b"/") :]
            else:
                time.sleep(0.05)
                assert accepted(fw) == clean_n
            meter.step(10)
            i += 1
        m = fw.status()["meter"]
        assert int(m["accepted"]) == clean_n
        if "bad_crc" in kinds:
            assert int(m["rejected_crc"]) > 0
        if "truncated" in kinds:
            assert int(m["framer_truncated"]) > 0
        if "oversized" in kinds:
            assert int(m["framer_oversized"]) > 0
        if "garbage" in kinds:
            assert int(m["framer_skipped_bytes"]) > 0
        assert len(kinds - {None}) >= 3
        metrics = fw.get("/metrics")[2].decode()
        assert f'p1_telegrams_total{{result="accepted"}} {clean_n}' in metrics
    finally:
        fw.stop_ok()
        sim.close()


def test_raw_tcp_drops_client_that_never_reads(tmp_path):
    cfg = '{"raw_tcp": {"write_timeout_s": 1}}'
    meter = Meter(seed=1)
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source, config=cfg)
    try:
        sim.accept()
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect(("127.0.0.1", fw.raw_port))
        good = socket.create_connection(("127.0.0.1", fw.raw_port))
        good.settimeout(5)
        fw.wait(lambda: fw.status()["raw_tcp"]["clients"] == 2, what="two raw clients")
        want = b""
        got = b""
        deadline = time.monotonic() + 20
        while fw.status()["raw_tcp"]["dropped_slow"] == 0:
            assert time.monotonic() < deadline, "stuck client never dropped"
            for _ in range(5):
                data, _ = meter.emit()
                sim.send(data)
                want += data
                meter.step(1)
            while len(got) < len(want):
                got += good.recv(65536)
            time.sleep(0.05)
        assert got == want  # the reading client saw every byte meanwhile
        st = fw.status()["raw_tcp"]
        assert st["clients"] == 1
        stuck.close()
        good.close()
    finally:
        fw.stop_ok()
        sim.close()


def test_default_wiring_runs_simulator_and_stops_cleanly(tmp_path):
    fw = Firmware(tmp_path, "--interval", "0.1")
    try:
        fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="a reading from the simulator")
        st, r = fw.json("/api/v1/reading")
        assert r["meter"] and int(r["age_s"]) >= 0
        s = fw.status()
        assert s["meter"]["source"].startswith("tcp://127.0.0.1:")
        assert int(s["boot_count"]) == 1
    finally:
        rc = fw.stop(signal.SIGINT)
    assert rc == 0
    err = fw.stderr()
    assert "Traceback" not in err
    assert (tmp_path / "config.json").exists()  # created with defaults
    assert (tmp_path / "bootinfo.json").exists()


@pytest.mark.parametrize("dialect,offset", [("fi", "+02:00"), ("dsmr5", "+01:00")])
def test_simulator_dialect_sets_the_meters_time_zone(tmp_path, dialect, offset):
    """`make run ARGS="--dialect dsmr5"`: Dutch local time read as Dutch, not an hour off."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    fw = Firmware(tmp_path, "--interval", "0.1", "--dialect", dialect)
    try:
        fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="a reading from the simulator")
        ts = datetime.fromisoformat(fw.json("/api/v1/reading")[1]["timestamp"])
        # the simulator's meter starts at the wall clock, in its dialect's zone
        assert before <= ts <= datetime.now(timezone.utc) + timedelta(seconds=1), ts
        assert fw.status()["config"]["meter"]["std_offset"] == offset
    finally:
        fw.stop_ok()
    assert f"meter.std_offset {offset} (the {dialect} simulator's zone)" in fw.stderr()


def test_broken_config_boots_with_defaults_and_reports(tmp_path):
    fw = Firmware(tmp_path, "--interval", "0.1", config='{"http": {"port": 80')
    try:
        s = fw.status()
        assert any("not valid JSON" in e for e in s["config_errors"])
        assert s["config"]["meter"]["std_offset"] == "+02:00"
        fw.wait(lambda: fw.get("/api/v1/reading")[0] == 200, what="a reading")
    finally:
        fw.stop_ok()


def test_bad_keys_fall_back_one_by_one(tmp_path):
    cfg = (
        '{"meter": {"std_offset": "2h", "buffer": 99999999}, "http": {"bind": 5},'
        ' "mqtt": {"password": "hunter2", "qos": 7}, "wifi": {"password": "pw"}, "bogus": 1}'
    )
    fw = Firmware(tmp_path, "--interval", "0.1", config=cfg)
    try:
        s = fw.status()
        errs = "\n".join(s["config_errors"])
        for key in ("meter.std_offset", "meter.buffer", "http.bind", "mqtt.qos", "'bogus'"):
            assert key in errs
        assert len(s["config_errors"]) == 5
        assert s["config"]["mqtt"]["password"] == "***"
        assert s["config"]["wifi"]["password"] == "***"
        body = fw.get("/api/v1/status")[2]
        assert b"hunter2" not in body and b'"pw"' not in body
    finally:
        fw.stop_ok()


def test_ctrl_c_with_a_stuck_raw_client_and_an_open_sse_stream_stops_cleanly(tmp_path):
    """A peer that never reads must not hold shutdown (a closing socket waits to flush)."""
    meter = Meter(seed=3)
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source, config='{"raw_tcp": {"write_timeout_s": 30}}')
    stuck = socket.socket()
    sse = None
    try:
        sim.accept()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect(("127.0.0.1", fw.raw_port))
        sse = socket.create_connection(("127.0.0.1", fw.port))
        sse.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: t\r\n\r\n")
        fw.wait(lambda: fw.status()["raw_tcp"]["clients"] == 1, what="the stuck raw client")
        for _ in range(30):  # far more than the stuck client's buffers hold
            sim.send(meter.emit()[0])
            meter.step(1)
        fw.wait(lambda: fw.status()["meter"]["accepted"] >= 20, what="telegrams accepted")
        t0 = time.monotonic()
        assert fw.stop(signal.SIGINT) == 0
        assert time.monotonic() - t0 < 8
        assert "Traceback" not in fw.stderr()
    finally:
        stuck.close()
        if sse is not None:
            sse.close()
        sim.close()
