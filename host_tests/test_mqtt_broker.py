"""MqttService against a real mosquitto on a loopback port: no mocks.

Readings come from the real parser (recorded telegrams and the simulator);
a paho-mqtt subscriber checks what arrives, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from mosquitto import Mosquitto, Subscriber, available
from p1util import publish

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tools"))

from hub import Hub  # noqa: E402
from net.mqtt_client import MqttService  # noqa: E402
from p1.framer import Framer  # noqa: E402
from p1.jsonout import dumps  # noqa: E402
from p1.parse import parse  # noqa: E402
from p1.readings import readings  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto not installed (make setup)")

E360 = ROOT / "host_tests" / "telegrams" / "se-lg-e360-01.txt"
DEV = "a1b2c3d4e5f6"
BASE = "p1/" + DEV


def reading_of(data: bytes):
    fr = Framer(3072)
    fr.feed(data)
    frame = fr.next_frame()
    assert frame is not None and fr.crc == "ok"
    return readings(parse(frame, fr.crc))


def sim_telegrams(n: int, seed: int = 1) -> list[bytes]:
    from simulate import Meter

    m = Meter(seed=seed)
    out = []
    for _ in range(n):
        out.append(m.telegram())
        m.step(1)
    return out


def cfg_for(b: Mosquitto, **kw):
    c = {"enabled": True, "host": b.host, "port": b.port, "keepalive_s": 5}
    c.update(kw)
    return c


class Running:
    """MqttService on its own event loop in the test's thread (async with)."""

    def __init__(self, broker: Mosquitto, spool_dir: str | None = None, **cfg):
        self.hub = Hub()
        self.svc = MqttService(self.hub, cfg_for(broker, **cfg), DEV, "0.1-test", None, spool_dir=spool_dir)
        self.svc.backoff_max_ms = 500

    async def __aenter__(self):
        self.hub.add_status("mqtt", self.svc.status)
        self.task = asyncio.create_task(self.svc.run())
        return self

    async def __aexit__(self, *exc):
        await asyncio.wait([asyncio.ensure_future(self.svc.stop())], timeout=10)
        # stop() alone ends run() (at the session loop's next round, within a second)
        done, _ = await asyncio.wait([self.task], timeout=5)
        self.task.cancel()
        assert done, "MqttService.run() did not end within 5 s of stop(); status: %r" % self.svc.status()

    async def until(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("timed out; status: %r" % self.svc.status())
            await asyncio.sleep(0.02)


def publish_one(broker: Mosquitto, topic: str, payload: str) -> None:
    import paho.mqtt.publish as pub

    pub.single(topic, payload, hostname=broker.host, port=broker.port)


async def athread(sub: Subscriber, topic: str, n: int, timeout=10.0):
    return await asyncio.to_thread(sub.wait_count, topic, n, timeout)


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(tmp_path) as b:
        yield b


def test_state_is_the_exact_json_of_each_reading_and_status_is_online(broker):
    sub = Subscriber(broker, [BASE + "/#"])
    tels = sim_telegrams(5)

    async def main():
        async with Running(broker) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            for t in tels:
                publish(r.hub, t)
                await asyncio.sleep(0.05)  # telegrams come at least a second apart; not all at once
            got = await athread(sub, BASE + "/state", 5)
            await r.until(lambda: r.svc.status()["published"] == 5)  # PUBACKs
            return got

    got = asyncio.run(main())
    want = [dumps(reading_of(t)).encode() for t in tels]
    assert got == want
    for g, t in zip(got, tels):
        obj = json.loads(g, parse_float=Decimal)
        for k, v in reading_of(t).items():
            assert str(obj[k]) == str(v)  # exact digits, no float on the way
    assert sub.on(BASE + "/status")[0] == b"online"
    sub.close()


def test_discovery_for_the_e360_telegram(broker):
    raw = E360.read_bytes()
    reading = reading_of(raw)

    async def main():
        async with Running(broker) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            publish(r.hub, raw)
            await r.until(lambda: r.svc.status()["discovery_sent"] == 1)
            await asyncio.sleep(0.2)
            # Home Assistant restarting asks for discovery again.
            await asyncio.to_thread(publish_one, broker, "homeassistant/status", "online")
            await r.until(lambda: r.svc.status()["discovery_sent"] == 2)

    asyncio.run(main())
    # A fresh subscriber gets the retained configs.
    sub = Subscriber(broker, [f"homeassistant/sensor/{DEV}/+/config"])
    tariff = ["tariff_power_w", "tariff_hour_average_w", "tariff_hour_projected_w", "tariff_15min_average_w",
              "tariff_15min_projected_w"]  # fmt: skip
    hour = ["energy_hour_import_wh", "energy_hour_export_wh"]
    names = [n for n in reading if n != "meter"] + tariff + hour
    sub.wait(lambda: len(sub.messages) >= len(names), 5)
    cfgs = {t.split("/")[3]: json.loads(p) for t, p, retained in sub.messages if retained}
    sub.close()
    assert sorted(cfgs) == sorted(names)

    expect = {  # name: (device_class, unit, state_class, precision)
        "energy_import_kwh": ("energy", "kWh", "total_increasing", 3),
        "energy_export_kwh": ("energy", "kWh", "total_increasing", 3),
        "reactive_energy_import_kvarh": (None, "kvarh", "total_increasing", 3),
        "reactive_energy_export_kvarh": (None, "kvarh", "total_increasing", 3),
        "power_import_kw": ("power", "kW", "measurement", 3),
        "l3_power_export_kw": ("power", "kW", "measurement", 3),
        "reactive_power_export_kvar": ("reactive_power", "var", "measurement", 0),
        "l2_reactive_power_import_kvar": ("reactive_power", "var", "measurement", 0),
        "l1_voltage_v": ("voltage", "V", "measurement", 1),
        "l3_current_a": ("current", "A", "measurement", 1),
        "timestamp": ("timestamp", None, None, None),
    }
    for name, (dc, unit, sc, prec) in expect.items():
        c = cfgs[name]
        assert c.get("device_class") == dc, name
        assert c.get("unit_of_measurement") == unit, name
        assert c.get("state_class") == sc, name
        assert c.get("suggested_display_precision") == prec, name
    for name in tariff:  # the power-tariff monitor's JSON (docs/TARIFF.md)
        c = cfgs.pop(name)
        assert c["state_topic"] == BASE + "/tariff" and c["unit_of_measurement"] == "W"
        assert c["unique_id"] == f"{DEV}_{name}" and c["availability_topic"] == BASE + "/status"
        assert c["device_class"] == "power" and c["state_class"] == "measurement"
    assert c["value_template"] == "{{ value_json['15min']['projected_w'] }}"
    for name in hour:  # the history's last closed hour (docs/HISTORY.md)
        c = cfgs.pop(name)
        assert c["state_topic"] == BASE + "/energy/hour" and c["unit_of_measurement"] == "Wh"
        assert c["device_class"] == "energy" and c["state_class"] == "total"
        assert c["last_reset_value_template"] == "{{ value_json.start }}"
    for name, c in cfgs.items():
        assert c["unique_id"] == f"{DEV}_{name}"
        assert c["state_topic"] == BASE + "/state"
        if "reactive_power" not in name:  # (those move the decimal point: test_home_assistant.py)
            assert c["value_template"] == "{{ value_json.%s }}" % name
        assert c["availability_topic"] == BASE + "/status"
        assert c["device"] == {
            "identifiers": [DEV],
            "name": "P1 reader " + DEV,
            "manufacturer": "Landis+Gyr",
            "model": "E360",
            "sw_version": "0.1-test",
        }
        if name != "timestamp":
            assert c.get("device_class") != "timestamp"
    assert cfgs["l1_voltage_v"]["name"] == "L1 voltage"
    assert cfgs["energy_import_kwh"]["name"] == "Energy import"


def test_a_discovery_round_out_of_memory_keeps_the_session_and_is_done_later(broker, monkeypatch):
    """The heap full while a round makes its configs (an outage's backlog, the history
    job): counted, the session goes on (the readings keep flowing), and the whole
    round goes out again once `discovery_again_ms` has passed."""
    import log
    from net import ha

    made = []
    configs = ha.configs

    def short_of_memory(*a):  # the first round runs out of memory at its 4th config
        for i, c in enumerate(configs(*a)):
            if not made and i == 3:
                made.append(i)
                raise MemoryError("memory allocation failed, allocating 820 bytes")
            yield c

    # (net.ha imported before: a round does not drop it, and the patch stays)
    monkeypatch.setattr(ha, "configs", short_of_memory)
    raw = E360.read_bytes()
    sub = Subscriber(broker, [f"homeassistant/sensor/{DEV}/+/config", BASE + "/state"])
    oom = log.memory_errors

    async def main():
        async with Running(broker) as r:
            r.svc.discovery_again_ms = 1500
            await r.until(lambda: r.svc.status()["state"] == "connected")
            publish(r.hub, raw)
            await r.until(lambda: made and log.memory_errors == oom + 1)
            after_oom = time.monotonic()
            st = r.svc.status()
            publish(r.hub, raw)  # the session still takes readings
            await r.until(lambda: r.svc.status()["discovery_sent"] == 1)
            return st, time.monotonic() - after_oom, r.svc.status()

    before, waited, after = asyncio.run(main())
    assert before["state"] == "connected" and before["discovery_sent"] == 0
    assert 1.0 <= waited, waited  # not at once into the same full heap
    assert after["reconnects"] == 0 and after["state"] == "connected" and after["published"] == 2
    names = [n for n in reading_of(raw) if n != "meter"]
    sub.wait(lambda: {t.split("/")[3] for t, _, _ in sub.messages if t.endswith("/config")} >= set(names), 5)
    assert len(sub.on(BASE + "/state")) == 2
    sub.close()


def test_a_session_that_runs_out_of_memory_is_counted_and_the_next_login_waits(broker):
    """A write (or the reader) out of memory ends the session -- a packet may be cut
    short -- is counted as a memory error, and the next login waits `oom_wait_ms`
    instead of going at once into the same full heap."""
    import log

    raw = E360.read_bytes()

    async def main():
        async with Running(broker, discovery=False) as r:
            r.svc.oom_wait_ms = 1500
            await r.until(lambda: r.svc.status()["state"] == "connected")
            oom = log.memory_errors
            w = r.svc._w
            write = w.write

            def out_of_memory(data):
                w.write = write
                raise MemoryError("memory allocation failed, allocating 820 bytes")

            w.write = out_of_memory
            publish(r.hub, raw)
            await r.until(lambda: r.svc.status()["state"] == "disconnected")
            t0 = time.monotonic()
            await r.until(lambda: r.svc.status()["state"] == "connected")
            waited = time.monotonic() - t0
            await r.until(lambda: r.svc.status()["published"] == 1)  # QoS 1: the reading again
            return log.memory_errors - oom, waited, r.svc.status()

    counted, waited, st = asyncio.run(main())
    assert counted == 1
    assert waited >= 0.7, waited  # 50..100 % of oom_wait_ms (jitter)
    assert st["reconnects"] == 1 and "allocating 820 bytes" in st["last_error"]


def test_commands_status_detail_and_malformed_ones_counted(broker):
    sub = Subscriber(broker, [BASE + "/status/detail"])

    async def main():
        async with Running(broker) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            await asyncio.sleep(0.1)
            sub.c.publish(BASE + "/set/status", "")
            sub.c.publish(BASE + "/set/nonsense", "x")
            sub.c.publish(BASE + "/set/status", "y" * 1000)
            got = await athread(sub, BASE + "/status/detail", 1)
            await r.until(lambda: r.svc.status()["bad_commands"] == 2)
            assert r.svc.status()["commands"] == 1
            return got

    got = asyncio.run(main())
    detail = json.loads(got[0])
    assert detail["mqtt"]["state"] == "connected"
    assert detail["mqtt"]["broker"] == f"127.0.0.1:{broker.port}"
    sub.close()


def test_per_value_and_raw_topics(broker):
    raw = E360.read_bytes()
    sub = Subscriber(broker, [BASE + "/#"])

    async def main():
        async with Running(broker, per_value_topics=True, raw_topic=True, qos=0) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            publish(r.hub, raw)
            await athread(sub, BASE + "/telegram", 1)

    asyncio.run(main())
    assert sub.on(BASE + "/energy_import_kwh") == [b"896.020"]
    assert sub.on(BASE + "/l1_voltage_v") == [b"230.1"]
    assert sub.on(BASE + "/meter") == [b"LGF5E360"]
    assert sub.on(BASE + "/telegram") == [raw]
    sub.close()


def test_interval_publishes_at_most_one_state_per_interval(broker):
    tels = sim_telegrams(10)
    sub = Subscriber(broker, [BASE + "/state"])

    async def main():
        async with Running(broker, interval_s=1) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            t0 = 1_000_000
            for i, t in enumerate(tels):  # one telegram per 250 ms of meter time
                publish(r.hub, t, ticks=t0 + i * 250)
                await asyncio.sleep(0.01)
            await athread(sub, BASE + "/state", 3)
            await asyncio.sleep(0.3)
            return r.svc.status()

    st = asyncio.run(main())
    got = sub.on(BASE + "/state")
    assert got == [dumps(reading_of(tels[i])).encode() for i in (0, 4, 8)]
    assert st["skipped"] == 7
    sub.close()


def test_wrong_password_is_reported_as_not_authorized(tmp_path):
    with Mosquitto(tmp_path, users={"meter": "s3cret-pw"}) as b:

        async def main():
            async with Running(b, user="meter", password="wrong-pw") as r:
                await r.until(lambda: r.svc.status()["state"] == "auth_failed")
                bad = r.svc.status()
            async with Running(b, user="meter", password="s3cret-pw") as r:
                await r.until(lambda: r.svc.status()["state"] == "connected")
                good = r.svc.status()
            return bad, good

        bad, good = asyncio.run(main())
    assert bad["last_error"] == "not authorized"
    assert bad["user"] == "meter"
    assert "wrong-pw" not in repr(bad) and "s3cret-pw" not in repr(good)
    assert good["last_error"] == ""


def test_tls_with_a_ca_made_in_the_test(tmp_path):
    raw = E360.read_bytes()
    with Mosquitto(tmp_path, tls=True) as b:
        sub = Subscriber(b, [BASE + "/state"])

        async def main():
            async with Running(b, tls=True, ca=str(b.ca)) as r:
                await r.until(lambda: r.svc.status()["state"] == "connected")
                publish(r.hub, raw)
                got = await athread(sub, BASE + "/state", 1)
            # Without our CA the default trust store rejects the self-signed server.
            async with Running(b, tls=True, ca="") as r:
                await r.until(lambda: "CERTIFICATE_VERIFY_FAILED" in r.svc.status()["last_error"])
                assert r.svc.status()["state"] != "connected"
            # insecure: no verification at all.
            async with Running(b, tls=True, insecure=True) as r:
                await r.until(lambda: r.svc.status()["state"] == "connected")
            return got

        got = asyncio.run(main())
        sub.close()
    assert got == [dumps(reading_of(raw)).encode()]


CHILD = """
import asyncio, sys
sys.path.insert(0, {fw!r})
from hub import Hub
from net.mqtt_client import MqttService
async def main():
    hub = Hub()
    svc = MqttService(hub, {cfg!r}, {dev!r}, "0", None)
    t = asyncio.create_task(svc.run())
    while svc.status()["state"] != "connected":
        await asyncio.sleep(0.02)
    print("connected", flush=True)
    await t
asyncio.run(main())
"""


def test_last_will_offline_when_the_firmware_process_is_killed(broker):
    sub = Subscriber(broker, [BASE + "/status"])
    code = CHILD.format(fw=str(ROOT / "firmware"), cfg=cfg_for(broker), dev=DEV)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"connected"
        assert sub.wait(lambda: sub.on(BASE + "/status")[-1:] == [b"online"], 5)
        os.kill(p.pid, signal.SIGKILL)
        assert sub.wait(lambda: sub.on(BASE + "/status")[-1:] == [b"offline"], 10)
    finally:
        p.kill()
        p.wait()
    sub.close()
    # Retained: a newcomer sees "offline" too.
    late = Subscriber(broker, [BASE + "/status"])
    assert late.wait(lambda: late.on(BASE + "/status") == [b"offline"], 5)
    late.close()


def outage(broker: Mosquitto, outage_s: float, rate_hz: float = 4, buffer: int = 500, spool_dir=None, **cfg):
    """Readings at rate_hz before, during and after a broker outage of outage_s.

    Returns (sent states, received states, service status); the status has
    `peak_spooled`, the most messages seen on flash during the outage.
    """
    n_before, n_after = 5, 5
    n_during = int(outage_s * rate_hz)
    tels = sim_telegrams(n_before + n_during + n_after, seed=7)
    sub = Subscriber(broker, [BASE + "/state"], qos=1, clean=False, client_id="outage-sub")

    async def main():
        async with Running(broker, spool_dir, buffer=buffer, keepalive_s=2, **cfg) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            i = 0
            for _ in range(n_before):
                publish(r.hub, tels[i])
                i += 1
                await asyncio.sleep(1 / rate_hz)
            await asyncio.to_thread(broker.stop)
            t_end = time.monotonic() + outage_s
            peak = 0
            while time.monotonic() < t_end and i < n_before + n_during:
                publish(r.hub, tels[i])
                i += 1
                await asyncio.sleep(1 / rate_hz)
                peak = max(peak, r.svc.status()["spooled"])
            await asyncio.to_thread(broker.start)
            while i < len(tels):
                publish(r.hub, tels[i])
                i += 1
                await asyncio.sleep(1 / rate_hz)
            last = dumps(reading_of(tels[i - 1])).encode()  # arrives last: order is kept
            await asyncio.to_thread(sub.wait, lambda: last in sub.on(BASE + "/state"), 20 + outage_s)
            await asyncio.sleep(0.2)  # a late duplicate, if any
            return i, dict(r.svc.status(), peak_spooled=peak)

    sent_n, status = asyncio.run(main())
    sub.close()
    sent = [dumps(reading_of(t)).encode() for t in tels[:sent_n]]
    return sent, sub.on(BASE + "/state"), status


def dedupe_in_order(msgs: list[bytes]) -> list[bytes]:
    seen, out = set(), []
    for m in msgs:
        ts = json.loads(m)["timestamp"]
        if ts not in seen:
            seen.add(ts)
            out.append(m)
    return out


@pytest.mark.parametrize(
    "outage_s",
    [2, pytest.param(30, id="30s-outage-as-in-the-issue")],
)
def test_broker_outage_loses_nothing_and_keeps_order(broker, outage_s):
    import log

    del log.recent[:]
    sent, got, status = outage(broker, outage_s)
    assert dedupe_in_order(got) == sent  # in order, none lost
    assert len(got) - len(sent) <= 8  # duplicates only from the QoS 1 window
    assert status["dropped"] == 0
    assert status["reconnects"] >= 1
    assert status["state"] == "connected"
    # the session's end logged once (the status page's "log"), not each failed attempt
    assert len([x for x in log.recent if "mqtt: disconnected: " in x]) == 1, log.recent


def test_outage_longer_than_the_ring_drops_the_oldest_and_counts_them(broker, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    sent, got, status = outage(broker, 3, rate_hz=5, buffer=4, spool_dir=str(spool), spill_kb=0)
    got = dedupe_in_order(got)
    assert status["dropped"] > 0
    assert len(got) + status["dropped"] >= len(sent)
    # the newest readings survive: as many as the ring holds (a reconnect slower than
    # the 5 readings after the outage (1 s) drops the first of them, the oldest then)
    assert sent[-4:] == got[-4:]
    idx = [sent.index(m) for m in got]
    assert idx == sorted(idx)  # what arrives is in order
    assert status["peak_spooled"] == status["spool_bytes"] == status["spool_dropped"] == 0
    assert list(spool.iterdir()) == []  # spill_kb 0: flash untouched


def test_outage_longer_than_the_ring_spills_to_flash_and_loses_nothing(broker, tmp_path):
    """Ring of 4, ~40 readings while the broker is away: the rest wait on flash."""
    spool = tmp_path / "spool"
    spool.mkdir()
    sent, got, status = outage(broker, 2, rate_hz=20, buffer=4, spool_dir=str(spool))
    assert len(sent) >= 30
    assert dedupe_in_order(got) == sent  # in order, none lost
    assert len(got) - len(sent) <= 8  # duplicates only from the QoS 1 window
    assert status["peak_spooled"] >= 20
    assert (status["dropped"], status["spool_dropped"], status["spool_errors"]) == (0, 0, 0)
    assert (status["spooled"], status["spool_bytes"], status["queued"]) == (0, 0, 0)
    assert list(spool.iterdir()) == []  # all delivered: the segments are gone


def test_spooled_readings_survive_a_restart_of_the_service(broker, tmp_path):
    """Broker down, 30 readings (26 on flash, 4 in the RAM ring), the service
    restarts (a reboot), 3 more, broker back: the 26 arrive, then the 3."""
    spool = str(tmp_path)
    tels = sim_telegrams(35, seed=3)
    sub = Subscriber(broker, [BASE + "/state"], qos=1, clean=False, client_id="restart-sub")

    async def main():
        async with Running(broker, spool, buffer=4, keepalive_s=2) as r:
            await r.until(lambda: r.svc.status()["state"] == "connected")
            for t in tels[:2]:
                publish(r.hub, t)
            await r.until(lambda: r.svc.status()["published"] == 2)
            await asyncio.to_thread(broker.stop)
            await r.until(lambda: r.svc.status()["state"] != "connected")
            for t in tels[2:32]:
                publish(r.hub, t)
                await asyncio.sleep(0.01)
            before = r.svc.status()
        async with Running(broker, spool, buffer=4, keepalive_s=2) as r:
            after = r.svc.status()
            await r.until(lambda: "refused" in r.svc.status()["last_error"] or "failed" in r.svc.status()["last_error"])
            for t in tels[32:35]:
                publish(r.hub, t)
                await asyncio.sleep(0.01)
            await asyncio.to_thread(broker.start)
            last = dumps(reading_of(tels[34])).encode()
            await asyncio.to_thread(sub.wait, lambda: last in sub.on(BASE + "/state"), 20)
            await asyncio.sleep(0.2)
            return before, after, r.svc.status()

    before, after, end = asyncio.run(main())
    sub.close()
    assert (before["spooled"], before["queued"]) == (26, 4)
    assert after["spooled"] == 26
    want = [dumps(reading_of(t)).encode() for t in tels[:28] + tels[32:35]]
    assert dedupe_in_order(sub.on(BASE + "/state")) == want  # the RAM ring of the old run is gone
    assert (end["spooled"], end["dropped"], end["spool_errors"]) == (0, 0, 0)


def test_end_to_end_p1tool_run_simulator_to_subscriber(broker, tmp_path):
    """`p1tool.py run --mqtt URL --interval 0.1`: simulator -> firmware -> broker -> us.

    Every state equals the HTTP API's reading of the same telegram (minus its
    `age_s`), digit for digit; "online" is retained; SIGINT leaves "offline".
    """
    from runtime_harness import Firmware, exact_json

    sub = Subscriber(broker, ["p1/+/state", "p1/+/status"])
    fw = Firmware(tmp_path, "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--interval", "0.1")
    try:
        fw.wait(lambda: fw.status().get("mqtt", {}).get("state") == "connected", 10, "mqtt connected")
        found, states = False, []
        for _ in range(50):
            time.sleep(0.1)
            st, http = fw.json("/api/v1/reading")
            if st != 200:  # 503 before the first telegram
                continue
            del http["age_s"]
            states = [exact_json(p) for t, p, _ in sub.messages if t.endswith("/state")]
            if http in states and len(states) >= 3:  # the same telegram over HTTP and MQTT
                found = True
                break
        assert found, (http, states[-3:])
        status_topic = [t for t, _, _ in sub.messages if t.endswith("/status")][0]
        assert sub.on(status_topic)[0] == b"online"
        st = fw.status()
        m = st["mqtt"]
        assert m["broker"] == f"127.0.0.1:{broker.port}" and m["published"] >= 2
        host = socket.gethostname().split(".")[0].lower()
        assert st["device_id"] == "host-" + "".join(c if c.isalnum() or c == "-" else "-" for c in host)
        assert status_topic == "p1/%s/status" % st["device_id"]  # the default base topic
    finally:
        fw.stop()
    assert sub.wait(lambda: sub.on(status_topic)[-1:] == [b"offline"], 5)
    sub.close()


class Pkt:
    """A packet as the stubborn broker saw it."""

    def __init__(self, first: int, body: bytes):
        from net import mqtt

        self.type = first >> 4
        self.qos, self.dup, self.body = first >> 1 & 3, bool(first & 8), body
        self.pid = self.topic = self.payload = None
        if self.type in (3, 4):  # PUBLISH, PUBACK: what the dongle's decode() knows
            _, self.pid, self.topic, self.payload = mqtt.decode(first, body)


CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ = 1, 3, 4, 8, 12


class StubbornBroker:
    """A loopback server that accepts CONNECT, answers PINGREQ only if `pings`,
    never PUBACKs, and records every packet per connection: what a dead or
    wedged broker looks like from the dongle. It answers CONNECT with `connack`;
    `send` (bytes) goes to the dongle after its SUBSCRIBE."""

    def __init__(self, pings: bool, send: bytes = b"", connack: bytes = b"\x20\x02\x00\x00"):
        self.pings = pings
        self.send = send
        self.connack = connack
        self.conns: list[list[Pkt]] = []

    async def start(self):
        from net import mqtt

        async def handle(reader, writer):
            got: list = []
            self.conns.append(got)
            try:
                while True:
                    first, body = await mqtt.read_packet(reader)
                    got.append(Pkt(first, body))
                    if first >> 4 == CONNECT:
                        writer.write(self.connack)
                    elif first >> 4 == SUBSCRIBE and self.send:
                        writer.write(self.send)
                    elif first >> 4 == PINGREQ and self.pings:
                        writer.write(b"\xd0\x00")
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]


def test_a_silent_broker_is_declared_dead_after_the_keepalive():
    async def main():
        b = StubbornBroker(pings=False)
        await b.start()
        svc = MqttService(Hub(), {"enabled": True, "host": "127.0.0.1", "port": b.port, "keepalive_s": 2}, DEV)
        svc.backoff_min_ms = 100
        task = asyncio.create_task(svc.run())
        t0 = time.monotonic()
        while svc.status()["reconnects"] < 1 and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        st = svc.status()
        task.cancel()
        b.server.close()
        return b, st, took

    b, st, took = asyncio.run(main())
    assert st["reconnects"] >= 1 and 2 <= took < 5, (st, took)
    assert "silent" in st["last_error"]
    assert any(p.type == PINGREQ for p in b.conns[0])  # it asked before giving up


def test_unacknowledged_qos1_is_resent_with_dup_then_again_after_reconnect():
    raw = E360.read_bytes()

    async def main():
        b = StubbornBroker(pings=True)
        await b.start()
        hub = Hub()
        svc = MqttService(hub, {"enabled": True, "host": "127.0.0.1", "port": b.port, "discovery": False}, DEV)
        svc.ack_timeout_ms = 200
        svc.backoff_min_ms = 100
        task = asyncio.create_task(svc.run())
        while svc.status()["state"] != "connected":
            await asyncio.sleep(0.02)
        publish(hub, raw)
        while len(b.conns) < 2 or not [p for p in b.conns[1] if p.type == PUBLISH and p.qos]:
            await asyncio.sleep(0.02)
        st = svc.status()
        task.cancel()
        b.server.close()
        return b, st

    b, st = asyncio.run(main())
    first = [p for p in b.conns[0] if p.type == PUBLISH and p.qos == 1]
    assert [p.dup for p in first] == [False, True, True]  # max_tries sends, then the link is dead
    assert len({p.pid for p in first}) == 1 and first[0].payload == dumps(reading_of(raw)).encode()
    again = [p for p in b.conns[1] if p.type == PUBLISH and p.qos == 1]
    assert again[0].dup and again[0].payload == first[0].payload
    assert "PUBACK" in st["last_error"] and st["queued"] == 1


def test_p1tool_run_mqtts_with_login_and_ca_from_the_url(tmp_path):
    """`make run MQTT=mqtts://user:pw@127.0.0.1:PORT?ca=FILE`: TLS and a login, no file edited."""
    from runtime_harness import Firmware, exact_json

    with Mosquitto(tmp_path, users={"meter": "s3cret-pw"}, tls=True) as b:
        sub = Subscriber(b, ["p1/+/state"], user="meter", password="s3cret-pw")
        url = f"mqtts://meter:s3cret-pw@127.0.0.1:{b.port}?ca={b.ca}"
        fw = Firmware(tmp_path, "--mqtt", url, "--interval", "0.1")
        try:
            fw.wait(lambda: fw.status().get("mqtt", {}).get("state") == "connected", 10, "mqtts connected")
            assert sub.wait(lambda: len(sub.messages) >= 2, 10)
            state = exact_json(sub.messages[-1][1])
            assert state["meter"] == "LGF5E360" and "energy_import_kwh" in state
            st = fw.status()
            assert st["mqtt"]["tls"] is True and st["mqtt"]["user"] == "meter"
            assert "s3cret-pw" not in json.dumps(st)  # never echoed back
        finally:
            fw.stop_ok()
            sub.close()


def test_mqtt_url_options_are_checked():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from run_host import parse_mqtt_url

    c = parse_mqtt_url("mqtts://u:p%40ss@127.0.0.1?ca=/x/ca.crt")
    assert (c["tls"], c["port"], c["ca"], c["insecure"], c["password"]) == (True, 8883, "/x/ca.crt", False, "p@ss")
    assert parse_mqtt_url("127.0.0.1:1884")["port"] == 1884
    assert parse_mqtt_url("mqtts://h?insecure=1")["insecure"] is True
    for bad in ("mqtt://h?ca=/x", "mqtts://h?cert=1", "http://h", "mqtt://"):
        with pytest.raises(ValueError):
            parse_mqtt_url(bad)


@pytest.mark.parametrize("url", ["mqtt://meter:s3cret-pw@127.0.0.1:abc", "ftp://meter:s3cret-pw@h", "mqtt://meter:s3cret-pw@h:99999"])
def test_make_run_never_echoes_the_mqtt_password(tmp_path, url):
    """The recipe is silent and every message about the URL hides the password."""
    from conftest import REPO

    r = subprocess.run(
        ["make", "run", f"MQTT={url}", f"ARGS=--config {tmp_path}/config.json"],
        cwd=REPO, capture_output=True, timeout=120,
    )  # fmt: skip
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode != 0 and "run: --mqtt" in out, out
    assert "s3cret-pw" not in out and "meter:***@" in out, out


def test_last_will_when_the_host_firmware_itself_is_killed(broker, tmp_path):
    """SIGKILL of `p1tool.py run` (no goodbye possible): the broker publishes "offline"."""
    from runtime_harness import Firmware, MeterServer

    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source, "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
    try:
        sim.accept()
        sim.send(E360.read_bytes())
        fw.wait(lambda: fw.status().get("mqtt", {}).get("state") == "connected", 10, "mqtt connected")
        topic = "p1/%s/status" % fw.status()["device_id"]
        sub = Subscriber(broker, [topic])
        assert sub.wait(lambda: sub.on(topic)[-1:] == [b"online"], 5)
        fw.proc.kill()
        fw.proc.wait()
        assert sub.wait(lambda: sub.on(topic)[-1:] == [b"offline"], 10)  # keepalive 30 s not needed: TCP reset
        sub.close()
    finally:
        fw.stop()
        sim.close()


@pytest.mark.parametrize(
    "connack, state, error",
    [
        (b"\x20\x02\x00\x05", "auth_failed", "not authorized"),
        (b"\x20\x02\x00\x03", "disconnected", "server unavailable"),
        (b"\x20\x01\x00", "disconnected", "expected CONNACK"),  # too short
        (b"\x40\x02\x00\x01", "disconnected", "expected CONNACK"),  # a PUBACK instead
    ],
)
def test_a_refused_or_garbled_connack_is_reported(connack, state, error):
    async def main():
        b = StubbornBroker(pings=True, connack=connack)
        await b.start()
        svc = MqttService(Hub(), {"enabled": True, "host": "127.0.0.1", "port": b.port}, DEV)
        task = asyncio.create_task(svc.run())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and not svc.status()["last_error"]:
            await asyncio.sleep(0.02)
        st = svc.status()
        task.cancel()
        b.server.close()
        return st

    st = asyncio.run(main())
    assert (st["state"], st["last_error"]) == (state, error)


def test_a_qos1_command_is_acknowledged_and_answered():
    """We subscribe with QoS 0, so mosquitto never sends a command with QoS 1; a broker
    that does gets its PUBACK, and the command is answered all the same."""
    from net import mqtt

    cmd = bytes(mqtt.publish_head(BASE + "/set/status", 0, 1, False, False, 77))

    async def main():
        b = StubbornBroker(pings=True, send=cmd)
        await b.start()
        hub = Hub()
        svc = MqttService(hub, {"enabled": True, "host": "127.0.0.1", "port": b.port, "discovery": False}, DEV)
        hub.add_status("mqtt", svc.status)
        task = asyncio.create_task(svc.run())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and not (
            b.conns and [p for p in b.conns[0] if p.type == PUBLISH and p.topic == BASE + "/status/detail"]
        ):
            await asyncio.sleep(0.02)
        task.cancel()
        b.server.close()
        return b.conns[0]

    got = asyncio.run(main())
    assert [p.pid for p in got if p.type == PUBACK] == [77]
    detail = [p for p in got if p.type == PUBLISH and p.topic == BASE + "/status/detail"]
    assert len(detail) == 1 and json.loads(detail[0].payload)["mqtt"]["commands"] == 1


def test_micropython_tls_and_rare_code_dropped(tmp_path):
    """The service under MicroPython's Unix port (real sockets, its own ssl on mbedTLS)
    against mosquitto with TLS: log in with a PEM CA file, answer a status command,
    discovery, a broker outage that spills to the flash spool, the drain. The script
    (host_tests/mp/mqtt_unix_lazy.py) checks sys.modules after each step: the rare
    code (login, discovery, status answer) is dropped after use, the spool module is
    imported only at the ring's first overflow and dropped once the spool is drained."""
    import threading

    from conftest import FIRMWARE, MICROPYTHON_UNIX, MP_TESTS_DIR

    if not MICROPYTHON_UNIX.exists():
        pytest.fail("the MicroPython Unix port is missing: run `make setup`", pytrace=False)
    spool = tmp_path / "spool"
    spool.mkdir()
    with Mosquitto(tmp_path / "broker", tls=True) as b:
        sub = Subscriber(b, [BASE.replace(DEV, "mpdev") + "/#"], qos=1, clean=False, client_id="mp-sub")
        env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
        args = [str(MP_TESTS_DIR / "mqtt_unix_lazy.py"), str(b.port), str(b.ca), str(spool), str(E360)]
        p = subprocess.Popen(
            [str(MICROPYTHON_UNIX), "-X", "heapsize=2M", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            text=True,
        )
        lines: list[str] = []
        steps: list[str] = []
        seen = threading.Condition()

        def read():
            assert p.stdout is not None
            for line in p.stdout:
                with seen:
                    lines.append(line.rstrip("\n"))
                    if line.startswith("STEP "):
                        steps.append(line[5:].strip())
                    seen.notify_all()
            with seen:
                steps.append("exit")
                seen.notify_all()

        def wait_step(name: str, timeout: float = 60) -> None:
            with seen:
                assert seen.wait_for(lambda: name in steps or "exit" in steps, timeout), "\n".join(lines)
                assert name in steps, "\n".join(lines)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        base = "p1/mpdev"
        try:
            wait_step("connected")
            # "online" comes after the dongle's SUBSCRIBE: once it is here, so is the subscription
            assert sub.wait(lambda: b"online" in sub.on(base + "/status"), 10)
            sub.c.publish(base + "/set/status", "")
            wait_step("published")
            b.stop()
            wait_step("spooled")
            b.start()
            wait_step("end", 90)
            assert p.wait(30) == 0, "\n".join(lines)
        finally:
            p.kill()
            p.wait()
            t.join(5)
        assert not [x for x in lines if x.startswith("FAIL")], "\n".join(lines)
        assert sub.wait(lambda: len(sub.on(base + "/state")) >= 9, 10)
        sub.close()
    states = dedupe_in_order(sub.on(base + "/state"))
    assert [json.loads(s)["timestamp"][11:19] for s in states] == ["16:00:%02d" % i for i in range(1, 10)]
    detail = sub.on(base + "/status/detail")
    assert len(detail) == 1 and json.loads(detail[0])["mqtt"]["tls"] is True
    assert sub.on(base + "/status")[-1] == b"offline"
