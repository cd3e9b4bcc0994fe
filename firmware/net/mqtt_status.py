"""The "mqtt" section of the status (`MqttService.status()`), on its own: the status
page and /metrics ask for it every few seconds, and loading `net.mqtt_rare` (then also
the set-up and commands) for it put ~6 KB more code in RAM (64-bit) each time.
Imported for the call and dropped after, like net.mqtt_rare."""

from clock import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython
    const = int

# indexes of MqttService._n (see net.mqtt_client)
_PUB = const(0)
_CONN = const(1)
_SKIP = const(2)
_CMD = const(3)
_BAD = const(4)
_DISC = const(5)
_SINCE = const(8)


def status(svc):
    """MqttService.status(): the "mqtt" section of the status."""
    c = svc.cfg
    ob = svc.outbox
    sp = ob.spool
    n = svc._n
    sd, se = ob.spool_dropped, ob.spool_errors
    if sp is not None:
        sd += sp.dropped
        se += sp.errors
    return {
        "state": svc._state,
        "broker": "%s:%d" % (c["host"], c["port"]),
        "tls": c["tls"],
        "user": c["user"],
        "client_id": c["client_id"] or "p1-" + svc.device_id,
        "base_topic": svc.base,
        "last_error": svc._last_error,
        "queued": len(ob.ring) + len(ob.inflight),
        "inflight": len(ob.inflight),
        "published": n[_PUB],
        "dropped": ob.dropped + sd + svc.dropped,
        "skipped": n[_SKIP],
        "reconnects": max(n[_CONN] - 1, 0),
        "since_ms": ticks_diff(ticks_ms(), n[_SINCE]),
        "discovery_sent": n[_DISC],
        "commands": n[_CMD],
        "bad_commands": n[_BAD],
        "spooled": len(sp) if sp is not None else 0,
        "spool_bytes": sp.nbytes if sp is not None else 0,
        "spool_dropped": sd,
        "spool_errors": se,
    }
