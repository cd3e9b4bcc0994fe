"""The history job (docs/HISTORY.md), cold: App._blink starts it at the first
telegram of each quarter hour of the meter's time stamp (and at the first one
after a boot); its code is in RAM only while it runs.

Two steps whose code is never in RAM at once: history.job (the snapshot), then
tariff.job (the monitor's peaks and report); then the relays' period (loadscold.sync,
with histcore only); then its MQTT messages, copied once that code is gone (so
they do not split that hole). Out of memory before the snapshot was written,
App._again has the next telegram try again.
"""

import gc

import log
from mem import done, loaded, turn, unload_new


async def run(app, body):
    """The job for the reading `body`, in the cold slot (mem.turn)."""
    await turn()
    mods = ("history", "histcore", "fsutil", "tariff", "tariffrule")
    before = loaded(*mods)
    gc.collect()  # (its code then goes where the garbage was, not past the live data)
    msgs = ()
    wrote = False
    try:
        msgs, closed, quarter = __import__("history").job(app, body)
        wrote = True
        app._hfail = 0
        unload_new(before, "history")
        gc.collect()
        if closed or quarter:
            msgs += __import__("tariff").job(app, closed, quarter)
    except MemoryError:
        log.oom("history")
        if not wrote:
            app._again()
    except Exception as e:  # noqa: BLE001 - a full or read-only flash: logged, the meter goes on
        log.exc(e, "history")
    finally:
        try:
            if app.loads is not None:  # the power guard's period (its start from the history)
                unload_new(before, "history", "tariff")  # (sync needs histcore and tariffrule only)
                gc.collect()
                try:
                    app.loads.cold("sync", body)
                except Exception as e:  # noqa: BLE001 - MemoryError too: the next quarter hour again
                    log.exc(e, "loads")
            unload_new(before, *mods)
            gc.collect()
        finally:
            done()  # (whatever happened above: a cold slot held for good slows every job)
    m = app.mqtt
    if m is not None:
        for t, p in msgs:
            m.outbox.put((m.base + t, p.encode(), True))  # (sent with the next reading)
