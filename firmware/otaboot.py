"""OTA update: the state file, the switch at boot, the trial and the rollback
(cold: boot.py imports it only when the state file exists, the app once at
start and, during a trial, from its supervisor; dropped after each use).

Layout under the update root R ("/" on the device, the `p1tool.py run --ota`
folder on the host board):

  R/app/         the running version (boot.py puts it on sys.path)
  R/prev/        the version before it, kept for the rollback
  R/stage/       an upload (web.update), complete only once the state says so
  R/update.json  the state (fsutil: power-safe, checksum line), keys in order:
                 {"state", "version", "previous", "boots", "trial_s", "result"}

States: "staged" (every file checked: switch at the next boot) -> "switching"
(the renames below run) -> "trial" (the new version runs; `boots` counts its
starts) -> "ok" once it reported healthy, or "rollback" (it did not within
`trial_s`, or it started more than MAX_BOOTS times: a crash loop) ->
"rolled_back" (prev is app again). Every step is a rename of a folder (atomic
on FAT and littlefs) followed by a state write; a power cut anywhere leaves a
state from which `boot()` finishes the step it was in.
"""

import json
import os

from fsutil import exists, read, write_atomic

MAX_BOOTS = 3  # starts of a new version without reporting healthy: then rolled back
TRIAL_S = 300  # default time a new version has to report healthy
KEYS = ("state", "version", "previous", "boots", "trial_s", "result")


def load(root):
    """The state dict of update root `root` (ends with "/"), or None."""
    data = read(root + "update.json", 1024)[0]
    try:
        s = json.loads(data or b"")
        return s if isinstance(s, dict) and "state" in s else None
    except ValueError:
        return None


def save(root, s):
    """Write state `s` (a dict with KEYS) power-safely, keys in KEYS order."""
    write_atomic(root + "update.json", "{" + ", ".join('"%s": %s' % (k, json.dumps(s.get(k))) for k in KEYS) + "}")


def rmtree(path):
    """Remove a file or a folder with all it holds; quiet if missing."""
    try:
        st = os.stat(path)[0]
    except OSError:
        return
    if st & 0x4000:
        for n in os.listdir(path):
            rmtree(path + "/" + n)
        os.rmdir(path)
    else:
        os.remove(path)


def boot(root):
    """Run at boot before the app is imported: finish a switch or a rollback,
    count a trial's boots. Returns the state ("trial", "ok", ...) or None."""
    s = load(root)
    if s is None:
        return None
    app, prev, stage = root + "app", root + "prev", root + "stage"
    st = s["state"]
    if st == "staged":
        if not exists(stage):
            s["state"] = "failed"
            s["result"] = "the staged files are gone"
            save(root, s)
            return "failed"
        s["state"] = st = "switching"
        save(root, s)
    if st == "switching":
        if exists(stage):
            if exists(app):
                rmtree(prev)
                os.rename(app, prev)
            os.rename(stage, app)
        s["state"] = st = "trial"
        s["boots"] = 0
        s["result"] = "trying %s" % s["version"]
    if st == "trial":
        s["boots"] = n = (s.get("boots") or 0) + 1
        if n > MAX_BOOTS:
            s["state"] = st = "rollback"
            s["result"] = "%s did not start (%d boots)" % (s["version"], n - 1)
        save(root, s)
    if st == "rollback":
        _rollback(root, s)
        st = s["state"]
    elif st == "rolled_back":
        rmtree(root + "bad")  # (a power cut before the rollback's last step)
    return st


def _rollback(root, s):
    app, prev, bad = root + "app", root + "prev", root + "bad"
    if exists(prev):
        rmtree(bad)
        if exists(app):
            os.rename(app, bad)
        os.rename(prev, app)
    elif not exists(bad):  # nothing to go back to (a first install without prev)
        s["state"] = "failed"
        s["result"] += "; no previous version to roll back to"
        save(root, s)
        return
    s["state"] = "rolled_back"
    s["result"] = "rolled back to %s: %s" % (s["previous"], s["result"])
    save(root, s)
    rmtree(bad)


def started(app):
    """At start (appstart): a trial gets its deadline (`app.trial`), a rollback is logged."""
    import log
    from clock import ticks_add, ticks_ms

    s = load(app.board.ota_root)
    if s is None:
        return
    if s["state"] == "trial":
        t = s.get("trial_s") or TRIAL_S
        app.trial = ticks_add(ticks_ms(), t * 1000)
        log.info("update: trying %s (boot %d), healthy within %d s or rolled back" % (s["version"], s["boots"], t))
    elif s["state"] in ("rolled_back", "failed"):
        log.warn("update: " + s["result"])


def tick(app):
    """During a trial (the supervisor): healthy -> "ok"; past the deadline ->
    "rollback" and a reset (boot() rolls back)."""
    import log
    from clock import ticks_diff, ticks_ms

    why = _unhealthy(app)
    root = app.board.ota_root
    if why and ticks_diff(ticks_ms(), app.trial) < 0:
        return
    app.trial = None
    s = load(root)
    if s is None or s["state"] != "trial":
        return
    if not why:
        s["state"] = "ok"
        s["result"] = "updated from %s to %s" % (s["previous"], s["version"])
        save(root, s)
        log.info("update: " + s["result"])
        return
    s["state"] = "rollback"
    s["result"] = "%s not healthy within %d s: %s" % (s["version"], s.get("trial_s") or TRIAL_S, why)
    save(root, s)
    log.error("update: " + s["result"])
    app.board.reset("update: " + s["result"])


def _unhealthy(app):
    """What keeps the app from being healthy ("" if nothing): a telegram parsed,
    HTTP listening, MQTT connected if it is enabled."""
    out = []
    if app.hub.sample is None:
        out.append("no telegram")
    w = app.web
    if w is None or not w.server:
        out.append("http down")
    if app.cfg["mqtt"]["enabled"] and getattr(app.mqtt, "_state", None) != "connected":
        out.append("mqtt not connected")
    return ", ".join(out)
