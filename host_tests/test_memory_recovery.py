"""No cliff: the firmware under MicroPython's Unix port is starved of memory by an
allocation hog (tools/mp/hostmain.py --hog: once a file exists, every free byte of
the heap is taken until the firmware failed 8 times, 3 to 30 s), then the hog lets
go: HTTP, SSE, MQTT and the meter all work again, nothing was restarted for good,
the out-of-memory episode is counted and logged, and the repeated failures made the
firmware ask for a reset, with its reason recorded and shown after the next start.

On the device the reset itself follows (`machine.reset()`, tested against the
fake `machine` in test_esp_board.py); the host board logs it instead.
"""

from __future__ import annotations

import json
import time

import pytest

from mosquitto import Mosquitto, Subscriber, available
from runtime_harness import Firmware, SseClient

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto not installed (make setup)")


def _ok(fw, path):
    try:
        return fw.get(path)[0] == 200
    except OSError:
        return False


@pytest.mark.timeout(240)
def test_every_service_recovers_after_the_heap_ran_out(tmp_path):
    hog = tmp_path / "hog"
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, ["p1/+/state"], qos=1, clean=False, client_id="recovery-sub")
        args = ("--mp", "--heap", "256K", "--hog", str(hog), "--interval", "0.2", "--step", "1",
                "--dialect", "dsmr5", "--mqtt", broker.url)  # fmt: skip
        fw = Firmware(tmp_path, *args)
        try:
            sse = SseClient(fw.port)
            fw.wait(lambda: len(sub.messages) >= 5 and len(sse.events) >= 5, 30, "readings before the hog")
            hog.write_text("all")
            # the hog holds the heap until the firmware failed 8 times (3-30 s)
            fw.wait(lambda: "hog: released" in "".join(fw.lines), 40, "the hog to let go")
            hog.unlink()
            t_back = time.monotonic()
            n_sub = len(sub.messages)
            # Every service again: HTTP, the meter, MQTT, SSE (a new client).
            fw.wait(lambda: _ok(fw, "/api/v1/status") and _ok(fw, "/metrics") and _ok(fw, "/api/v1/reading"),
                    30, "HTTP")  # fmt: skip
            seq = fw.status()["telegrams"]
            fw.wait(lambda: fw.status()["telegrams"] >= seq + 5, 30, "telegrams accepted again")
            fw.wait(lambda: len(sub.messages) >= n_sub + 5, 60, "MQTT publishing again")
            sse2 = SseClient(fw.port)
            fw.wait(lambda: len(sse2.events) >= 3, 30, "a new SSE client served")
            recovered_s = time.monotonic() - t_back

            def accounted() -> bool:
                """Nothing accepted was lost on its way to MQTT: every reading the hub took
                reached the subscriber, waits in the ring, the spool or in flight, or was
                counted as dropped (status first: the subscriber can only have more)."""
                st = fw.status()
                m = st["mqtt"]
                with sub.cond:
                    got = {json.loads(p)["timestamp"] for _, p, _ in sub.messages}
                return len(got) + m["dropped"] + m["queued"] + m["spooled"] >= st["telegrams"]

            fw.wait(accounted, 20, "every accepted reading at the subscriber, queued or counted")
            st = fw.status()
            sse.close()
            sse2.close()
        finally:
            fw.stop()
            sub.close()
        text = "".join(fw.lines)
        print(f"\nrecovery: {st['memory_errors']} memory errors caught, restarts {st['restarts']},"
              f" every service back {recovered_s:.1f} s after the hog let go")  # fmt: skip
        assert st["memory_errors"] >= 8 and "out of memory" in text
        assert st["mqtt"]["state"] == "connected"
        assert "Traceback" not in fw.stderr()
        assert "reset: memory:" in text  # the repeated failures asked for a reset
        # The reason was recorded: the next start shows it.
        fw2 = Firmware(tmp_path, "--mp", "--heap", "256K", "--interval", "0.5")
        try:
            st2 = fw2.status()
        finally:
            fw2.stop()
        assert st2["reset_reason"].startswith("memory: ") and st2["boot_count"] == st["boot_count"] + 1
        json.dumps(st2)
