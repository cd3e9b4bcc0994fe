# The flash spool (firmware/net/spool.py), case by case. Shared by two runners:
# host_tests/test_mqtt_spool.py (CPython, pytest, a tmp dir per case) and
# host_tests/mp/test_spool_mp.py (MicroPython in node, a dir under /tmp).
# MicroPython-compatible: os only, plain asserts, no pathlib or f-strings.
# Each case takes an empty directory.
import os

from hub import Hub, Sample
from net.mqtt_client import MqttService
from net.mqtt_setup import outbox
from net.spool import HEADER_LEN, Spool

TOPIC = "p1/dev1/state"


def msg(i, pad=100):
    """A state-like payload whose 6-digit timestamp says which reading it is."""
    return '{"timestamp": "%06d", "pad": "%s"}' % (i, "x" * pad)


def num(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return int(payload[15:21])


def rec_len(pad=100):
    return HEADER_LEN + len(TOPIC) + len(msg(0, pad))


def fill(sp, first, last, pad=100):
    for i in range(first, last):
        sp.append(TOPIC, msg(i, pad), 1, False)


def drain(sp, commit=False):
    out = []
    while True:
        r = sp.read()
        if r is None:
            return out
        assert r[0] == TOPIC and r[2] is False
        out.append(num(r[1]))
        if commit:
            sp.commit()


def drain_acked(ob):
    """Take every message of outbox `ob`, each acknowledged at once: their numbers."""
    got = []
    while True:
        m = ob.take(0)
        if m is None:
            return got
        got.append(num(m[0][1]))
        ob.ack(m[1])


def files(d):
    return sorted(n for n in os.listdir(d) if n.startswith("spool"))


def segments(d):
    return [n for n in files(d) if n.endswith(".bin")]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def case_order_across_segments(d):
    sp = Spool(d, 4096)  # segments of 1024 bytes: 6 records of 159 each
    assert 1024 // rec_len() == 6
    fill(sp, 0, 20)
    assert len(sp) == 20 and sp.nbytes == 20 * rec_len()
    assert segments(d) == ["spool-0.bin", "spool-1.bin", "spool-2.bin", "spool-3.bin"]
    assert drain(sp) == list(range(20))
    assert len(sp) == 0 and sp.read() is None
    fill(sp, 20, 25)  # the writer goes on while the reader catches up
    assert [num(sp.read()[1]), num(sp.read()[1])] == [20, 21]
    fill(sp, 25, 28)
    assert drain(sp) == list(range(22, 28))
    assert sp.errors == 0 and sp.dropped == 0
    sp.commit()  # everything delivered: no files left
    assert files(d) == [] and sp.nbytes == 0
    fill(sp, 28, 30)
    assert drain(sp) == [28, 29]


def case_bound_drops_the_oldest_segment_and_counts_it(d):
    sp = Spool(d, 2048)  # segments of 512 bytes: 3 records each
    per_seg = 512 // rec_len()
    fill(sp, 0, 40)
    assert sp.nbytes <= 2048
    assert sp.dropped > 0 and sp.dropped % per_seg == 0
    assert len(sp) + sp.dropped == 40
    total = 0
    for n in segments(d):
        total += os.stat(d + "/" + n)[6]
    assert total == sp.nbytes
    assert drain(sp) == list(range(sp.dropped, 40))  # the newest, in order


def case_bound_while_the_reader_is_in_the_oldest_segment(d):
    fill(Spool(d, 2048), 0, 10)
    sp = Spool(d, 2048)  # after a reboot: the reader at the start of segment 0
    assert num(sp.read()[1]) == 0
    fill(sp, 10, 40)  # segment 0, where the reader is, goes
    out = drain(sp)
    assert out == list(range(40 - len(out), 40)) and out[0] > 1
    assert sp.dropped > 0


def _torn(d, cut_into_last):
    sp = Spool(d, 8192)
    fill(sp, 0, 10)
    seg = d + "/" + segments(d)[-1]
    data = read_file(seg)
    write_file(seg, data[: len(data) - rec_len() + cut_into_last])  # power cut mid-record
    sp = Spool(d, 8192)  # the reboot
    assert len(sp) == 9
    fill(sp, 10, 13)  # appended to a new segment, never after the torn tail
    assert segments(d)[-1] != seg.split("/")[-1]
    assert drain(sp) == list(range(9)) + [10, 11, 12]
    assert sp.errors == 1  # the torn record, skipped


def case_torn_tail_in_the_payload_is_skipped_and_counted(d):
    _torn(d, HEADER_LEN + 20)


def case_torn_tail_in_the_header_is_skipped_and_counted(d):
    _torn(d, 5)


def case_restart_resumes_from_the_cursor(d):
    sp = Spool(d, 65536)
    fill(sp, 0, 50)
    assert drain(sp) == list(range(50))
    sp = Spool(d, 65536)  # nothing committed: all 50 again after a reboot
    assert len(sp) == 50
    got = []
    for _ in range(30):  # delivered one by one (QoS 0 style commit)
        got.append(num(sp.read()[1]))
        sp.commit()
    assert got == list(range(30))
    assert "spool.pos" in files(d)  # written after 16 records, not per record
    sp = Spool(d, 65536)  # crash, reboot
    out = drain(sp)
    assert out == list(range(16, 50))  # from the cursor: 14 duplicates, none lost


def case_restart_resumes_after_a_deleted_segment(d):
    sp = Spool(d, 4096)  # 6 records per segment
    fill(sp, 0, 20)
    assert sp.dropped == 0 and "spool-0.bin" in files(d)
    for _ in range(8):
        sp.read()
        sp.commit()
    assert "spool-0.bin" not in files(d)  # read to the end and deleted, cursor written
    sp = Spool(d, 4096)
    assert drain(sp) == list(range(7, 20))  # from the cursor written when segment 0 went


def case_outbox_ring_then_spool_order_and_cleanup(d):
    ob = outbox(4, 3, d, 8192)
    assert ob.spool is None  # opened when the ring first overflows
    for i in range(20):
        ob.put((TOPIC, msg(i), False))
    assert len(ob.ring) == 4 and len(ob.spool) == 16 and ob.dropped == 0
    got = []
    now = 0
    while True:
        took = []
        while True:
            m = ob.take(now)
            if m is None:
                break
            took.append(m)
        if not took and not ob.inflight:
            break
        for m, pid in took:
            got.append(num(m[1]))
        if len(got) == 6:  # new readings while draining go behind
            for i in range(20, 26):
                ob.put((TOPIC, msg(i), False))
        for e in list(ob.inflight):
            ob.ack(e[0])
        now += 1
    assert got == list(range(26))
    assert files(d) == [] and ob.spool is None  # drained: closed, the files gone
    assert ob.dropped == ob.spool_dropped == ob.spool_errors == 0
    for i in range(30, 36):  # the next outage opens it again
        ob.put((TOPIC, msg(i), False))
    assert len(ob.spool) == 2 and segments(d) == ["spool-0.bin"]


def case_outbox_qos0_drains_the_spool_and_closes_it(d):
    ob = outbox(2, 8, d, 8192)
    ob.qos = 0
    for i in range(7):
        ob.put((TOPIC, msg(i), False))
    assert len(ob.spool) == 5
    got = []
    while True:
        m = ob.take(0)
        if m is None:
            break
        assert m[1] == 0 and not ob.inflight
        got.append(num(m[0][1]))
    assert got == list(range(7)) and ob.spool is None and files(d) == []


def case_outbox_opens_the_spool_at_start_only_when_files_exist(d):
    assert outbox(2, 8, d, 8192).spool is None  # an empty dir
    ob = outbox(2, 8, d, 8192)
    for i in range(5):
        ob.put((TOPIC, msg(i), False))
    ob = outbox(2, 8, d, 8192)  # a restart: the spool of the last run is there
    assert ob.spool is not None and len(ob.spool) == 3
    got = drain_acked(ob)
    assert got == [0, 1, 2] and ob.spool is None and files(d) == []
    write_file(d + "/spool.pos", b"7 0\n")  # a cursor alone: looked at, cleaned up, closed
    ob = outbox(2, 8, d, 8192)
    assert ob.spool is None and files(d) == []
    assert outbox(2, 8, d, 0).spool is None and outbox(2, 8, None, 8192).spool is None


def case_unacknowledged_spooled_messages_come_back_after_a_restart(d):
    ob = outbox(2, 4, d, 65536)
    for i in range(42):
        ob.put((TOPIC, msg(i), False))
    for _ in range(5):  # 20 delivered
        pids = [ob.take(0)[1] for _ in range(4)]
        for p in pids:
            ob.ack(p)
    for _ in range(3):
        ob.take(0)  # 20, 21, 22 in flight when the power goes
    sp = Spool(d, 65536)
    out = drain(sp)
    assert out == list(range(out[0], 40)) and out[0] <= 20  # at least once


def _lcg(seed):
    while True:
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        yield seed


def case_corrupt_bytes_never_raise_and_cost_one_record(d):
    rnd = _lcg(7)
    n = 12
    for trial in range(40):
        for name in files(d):
            os.remove(d + "/" + name)
        sp = Spool(d, 8192)
        fill(sp, 0, n, pad=40)
        seg = d + "/spool-0.bin"
        data = bytearray(read_file(seg))
        at = next(rnd) % len(data)
        data[at] ^= 1 + next(rnd) % 255
        write_file(seg, data)
        sp = Spool(d, 8192)
        out = drain(sp)
        lost = [i for i in range(n) if i not in out]
        assert len(lost) == 1 and out == [i for i in range(n) if i != lost[0]], (trial, at, out)
        assert sp.errors == 1


def case_garbage_files_never_raise(d):
    rnd = _lcg(11)
    for trial in range(30):
        for name in files(d):
            os.remove(d + "/" + name)
        size = next(rnd) % 600
        junk = bytes(next(rnd) & 0xFF for _ in range(size))
        if trial % 3 == 0:  # valid magic and plausible lengths, wrong CRC
            junk = b"\xa5\x5a\x01\x00\x02\x00\x05\x00\x00\x00\x00\x00abhello" + junk
        write_file(d + "/spool-3.bin", junk)
        write_file(d + "/spool-x.bin", b"not a segment")
        write_file(d + "/spool.pos", junk[:20] if trial % 2 else b"3 99999\n")
        sp = Spool(d, 4096)
        drain(sp)
        sp.commit()
        fill(sp, 0, 3)
        assert drain(sp) == [0, 1, 2]
        os.remove(d + "/spool-x.bin")


def case_too_big_or_unwritable_is_counted_not_raised(d):
    sp = Spool(d, 1024)  # segments of 256 bytes
    assert not sp.append(TOPIC, msg(0, 300))
    assert sp.dropped == 1 and sp.errors == 0 and files(d) == []
    sp = Spool(d + "/missing", 4096)
    assert sp.errors == 1  # cannot list the dir
    assert not sp.append(TOPIC, msg(1))
    assert sp.dropped == 1 and sp.errors == 2 and sp.read() is None
    sp.commit()


def case_service_spills_and_reports(d):
    reading = b'{"timestamp": "000001", "meter": "m"}'
    svc = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 2}, "dev1", spool_dir=d)
    for i in range(5):
        svc.offer(Sample(i + 1, reading, len(reading) - 1, b"", i * 1000))
    st = svc.status()
    assert (st["spooled"], st["queued"], st["dropped"], st["spool_dropped"], st["spool_errors"]) == (3, 2, 0, 0, 0)
    assert st["spool_bytes"] == 3 * (HEADER_LEN + len(svc.state_topic) + len('{"timestamp": "000001", "meter": "m"}'))
    svc = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 2}, "dev1", spool_dir=d)
    assert svc.status()["spooled"] == 3  # still there after a restart
    off = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 2, "spill_kb": 0}, "dev1", spool_dir=d)
    none = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 2}, "dev1")
    for svc in (off, none):
        assert svc.outbox.spool is None
        for i in range(5):
            svc.offer(Sample(i + 1, reading, len(reading) - 1, b"", i * 1000))
        st = svc.status()
        assert (st["spooled"], st["dropped"], st["spool_bytes"]) == (0, 3, 0)


def case_service_keeps_the_spool_counters_after_it_closes(d):
    svc = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 1, "spill_kb": 1}, "dev1", spool_dir=d)
    for i in range(12):  # 11 spilled into 1 KB: the oldest segments go
        body = msg(i).encode()
        svc.offer(Sample(i + 1, body, len(body) - 1, b"", i * 1000))
    st = svc.status()
    lost = st["spool_dropped"]
    assert lost > 0 and st["dropped"] == lost and st["spooled"] + lost == 11
    ob = svc.outbox
    while True:
        m = ob.take(0)
        if m is None:
            break
        ob.ack(m[1])
    st = svc.status()
    assert ob.spool is None and files(d) == []
    assert (st["spooled"], st["spool_bytes"], st["queued"]) == (0, 0, 0)
    assert (st["spool_dropped"], st["dropped"]) == (lost, lost)  # counted still


def _no_memory(*args):
    raise MemoryError("memory allocation failed, allocating 1040 bytes")


def _raises_memory_error(f, *args):
    try:
        f(*args)
    except MemoryError:
        return True
    return False


def case_out_of_memory_reading_or_appending_loses_nothing(d):
    """A MemoryError (opening the file, the record's buffer) leaves the spool as it was:
    the read is tried again, nothing is skipped or counted as bad."""
    import net.spool as mod  # (the module now loaded: the outbox unloads it when it empties)

    sp = mod.Spool(d, 8192)
    fill(sp, 0, 10)
    got = [num(sp.read()[1]) for _ in range(3)]
    mod.open = _no_memory  # (a module global: found before the builtin)
    try:
        assert _raises_memory_error(sp.read)
        assert _raises_memory_error(sp.append, TOPIC, msg(10))
    finally:
        del mod.open
    sp.append(TOPIC, msg(10))
    got += drain(sp)
    assert got == list(range(11)), got
    assert sp.errors == 0 and sp.dropped == 0


def case_outbox_out_of_memory_loses_nothing_it_took(d):
    """The outbox under a MemoryError from the spool: put() leaves the ring as it was
    (the new message is not taken: the intake counts it), take() leaves every message
    where it was; afterwards every message taken goes out, in order."""
    import net.spool as mod  # (the module the outbox imports: loaded now)

    ob = outbox(2, 4, d, 8192)
    for i in range(6):
        ob.put((TOPIC, msg(i), False))
    assert len(ob.ring) == 2 and len(ob.spool) == 4
    mod.open = _no_memory
    try:
        assert _raises_memory_error(ob.put, (TOPIC, msg(6), False))
        assert _raises_memory_error(ob.take, 0)
        assert [num(m[1]) for m in ob.ring] == [4, 5] and not ob.inflight and len(ob.spool) == 4
    finally:
        del mod.open
    ob.put((TOPIC, msg(7), False))
    got = drain_acked(ob)
    assert got == [0, 1, 2, 3, 4, 5, 7], got
    assert ob.spool is None and files(d) == [] and ob.dropped == ob.spool_dropped == ob.spool_errors == 0


class _CutWriter:
    """A connection's writer that runs out of memory at its `fail_at`th write."""

    def __init__(self, fail_at):
        self.writes = []
        self.fail_at = fail_at
        self.closed = False

    def write(self, b):
        if len(self.writes) + 1 == self.fail_at:
            self.fail_at = 0
            raise MemoryError("memory allocation failed, allocating 1040 bytes")
        self.writes.append(bytes(b))

    def close(self):
        self.closed = True


def case_service_out_of_memory_writing_ends_the_session_and_loses_nothing(d):
    """A MemoryError between a PUBLISH's head and its payload: nothing more is written
    on that connection (closed at once: the broker must not read the next bytes as the
    payload), the session ends, the reading stays in flight for the next session and
    is not counted as lost."""
    reading = b'{"timestamp": "000001", "meter": "m"}'
    svc = MqttService(Hub(), {"enabled": True, "host": "h", "buffer": 2}, "dev1", spool_dir=d)
    w = svc._w = _CutWriter(2)  # the head goes, the payload does not
    assert svc.offer(Sample(1, reading, len(reading) - 1, b"", 0)) is True
    assert w.closed and len(w.writes) == 1 and svc._w is None and isinstance(svc._err, MemoryError)
    ob = svc.outbox
    assert [e[1][1] for e in ob.inflight] == [reading] and svc.status()["dropped"] == 0


CASES = [
    case_order_across_segments,
    case_bound_drops_the_oldest_segment_and_counts_it,
    case_bound_while_the_reader_is_in_the_oldest_segment,
    case_torn_tail_in_the_payload_is_skipped_and_counted,
    case_torn_tail_in_the_header_is_skipped_and_counted,
    case_restart_resumes_from_the_cursor,
    case_restart_resumes_after_a_deleted_segment,
    case_outbox_ring_then_spool_order_and_cleanup,
    case_outbox_qos0_drains_the_spool_and_closes_it,
    case_outbox_opens_the_spool_at_start_only_when_files_exist,
    case_unacknowledged_spooled_messages_come_back_after_a_restart,
    case_corrupt_bytes_never_raise_and_cost_one_record,
    case_garbage_files_never_raise,
    case_too_big_or_unwritable_is_counted_not_raised,
    case_service_spills_and_reports,
    case_service_keeps_the_spool_counters_after_it_closes,
    case_out_of_memory_reading_or_appending_loses_nothing,
    case_outbox_out_of_memory_loses_nothing_it_took,
    case_service_out_of_memory_writing_ends_the_session_and_loses_nothing,
]
