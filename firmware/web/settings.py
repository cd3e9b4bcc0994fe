"""Settings over HTTP (cold: web.api imports it for one request and drops it).

  GET  /api/v1/config      the saved config, secrets that are set as "***"
  PUT  /api/v1/config      the whole config (a missing key: its default)
  PATCH /api/v1/config     some keys; both check every key first: any error ->
                           422 {"errors": {"mqtt.port": "out of range 1..65535"}},
                           nothing written; else written atomically (config.save)
                           and applied: MQTT restarts, Wi-Fi joins again, the
                           rest after a reboot -> {"saved": true, "applied": [...],
                           "reboot": [...]} (field names). "***" for a secret
                           keeps its value; admin.* only by /api/v1/password.
  GET  /api/v1/wifi/scan   {"networks": [{"ssid", "rssi", "secure"}]}: what the
                           station hears, strongest first (404 without Wi-Fi)
  POST /api/v1/mqtt/test   {mqtt keys} over the current ones: CONNECT, the
                           broker's CONNACK -> {"ok": true|false, "answer": "..."}
  POST /api/v1/login       {"password": "..."} -> {"token": "..."} and the
                           session cookie; 401 wrong, 429 too many failures
  POST /api/v1/logout      ends the session
  POST /api/v1/password    {"password": new[, "old": current]}: the first one
                           needs no login (setup); later ones a session
Until an admin password is set, config changes are refused (403); once it is,
everything here but login needs a session (401 without). Request bodies
must be JSON with Content-Type application/json (a form of another site
cannot send that without asking first). Responses: JSON, keys sorted.
"""

import json

from web.server import JSON, error

NOSTORE = "Cache-Control: no-store\r\n"
# changed live (the rest needs a reboot): a field or a whole section
# what a request may load here, dropped again after it unless it was loaded before
_COLD = ("web.auth", "config", "fsutil", "p1.jsonout", "net.mqtt_rare", "net.mqtt", "appstart")
_LIVE = (
    "mqtt",
    "wifi.ssid",
    "wifi.password",
    "wifi.ap_password",
    "wifi.ap_open",
    "http.auth_readings",
    "http.cors_origin",
)


def _path(app):
    return getattr(app, "cfg_path", None) or "/config.json"


def _out(status, obj, extra=""):
    from p1.jsonout import dumps

    return status, JSON, dumps(obj), NOSTORE + extra


def _body(req):
    """The request's JSON object, or None."""
    if not req.headers.get("content-type", "").startswith(JSON):
        return None
    try:
        d = json.loads(req.body)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def handle(req, app):
    """The response to a request for one of the paths above, as a coroutine that
    unloads, when it is done, the modules it brought in."""
    from mem import loaded

    return _run(req, app, loaded(*_COLD))


async def _run(req, app, before):
    import sys

    from mem import unload_new

    try:
        r = _route(req, app)
        if not isinstance(r, tuple):
            r = await r
        return r
    finally:
        drop = [x for x in _COLD if x not in before]
        if "net.mqtt_client" in sys.modules and "net.mqtt" in drop:  # a service (re)started now uses it
            drop.remove("net.mqtt")
        unload_new(before, *drop)


def _route(req, app):
    from web import auth

    p = req.path[8:]
    m = req.method
    has_pw = bool(app.cfg["admin"]["password_hash"])
    if p == "config" and (m == "GET" or m == "HEAD"):
        if has_pw and not auth.ok(req, app):
            return error(401, "login required")
        import config

        return _out(200, config.public(config.load(_path(app))[0]))  # saved (a command line's overrides aside)
    if p == "wifi/scan" and (m == "GET" or m == "HEAD"):
        if has_pw and not auth.ok(req, app):
            return error(401, "login required")
        return _scan(app.wifi)
    allow = "GET, HEAD, PUT, PATCH" if p == "config" else "GET, HEAD" if p == "wifi/scan" else "POST"
    if m not in allow.split(", ") or m == "GET" or m == "HEAD":
        return error(405, None, "Allow: %s\r\n" % allow)
    d = _body(req)
    if d is None:
        return error(400, "expected a JSON object (Content-Type: application/json)")
    if p == "login":
        return _login(app, d)
    if p == "password" and not has_pw:  # the first one: setup
        return _password(req, app, d)
    why = auth.refused(req, app)
    if why:
        return error(*why)
    if p == "logout":
        auth.end_session(req, app)
        return _out(200, {"ok": True}, "Set-Cookie: p1session=; Max-Age=0; Path=/\r\n")
    if p == "password":
        return _password(req, app, d)
    if p == "mqtt/test":
        return _mqtt_test(app, d)
    return _save(app, d, m == "PATCH")


def _cookie(t):
    return "Set-Cookie: p1session=%s; HttpOnly; SameSite=Strict; Path=/\r\n" % t


async def _login(app, d):
    from web import auth

    w = auth.wait_s(app)
    if w:
        return error(429, "too many failed logins, wait %d s" % w, "Retry-After: %d\r\n" % w)
    pw = d.get("password")
    h = app.cfg["admin"]["password_hash"]
    if not h:
        return error(403, "no admin password set yet (POST /api/v1/password)")
    good = isinstance(pw, str) and await auth.check(pw, h)
    auth.failed(app, not good)
    if not good:
        import log

        log.warn("http: failed login")
        return error(401, "wrong password")
    t = auth.new_session(app)
    return _out(200, {"token": t}, _cookie(t))


async def _password(req, app, d):
    pw = d.get("password")
    if not isinstance(pw, str) or not 8 <= len(pw) <= 64:
        return _out(422, {"errors": {"password": "8..64 characters"}})
    import config
    from web import auth

    cur, _ = config.load(_path(app))
    h = await auth.make_hash(pw)
    cur["admin"]["password_hash"] = h
    try:
        config.save(_path(app), cur)
    except OSError as e:
        return error(500, "cannot write the config: %s" % e)
    app.cfg["admin"]["password_hash"] = h
    app.sessions = []  # every session ends with the old password
    t = auth.new_session(app)
    return _out(200, {"token": t}, _cookie(t))


async def _save(app, d, patch):
    import config

    path = _path(app)
    cur, _ = config.load(path)  # the file's (not a command line's overrides)
    new = config.copy_defaults()
    if patch:
        config.merge(new, cur, {})
    else:
        new["admin"] = dict(cur["admin"])
    errs = {}
    if "admin" in d:
        errs["admin"] = "set by POST /api/v1/password"
        d.pop("admin")
    for name in config.SECRETS:  # "***" (what GET shows): unchanged
        k, _, sk = name.partition(".")
        s = d.get(k)
        if isinstance(s, dict) and s.get(sk) == "***":
            s[sk] = cur[k][sk]
    config.merge(new, d, errs)
    if errs:
        return _out(422, {"errors": errs})
    try:
        config.save(path, new)
    except OSError as e:
        return error(500, "cannot write the config: %s" % e)
    applied = []
    reboot = []
    run = app.cfg
    for k in sorted(new):
        v = new[k]
        for sk in sorted(v) if isinstance(v, dict) else ("",):
            name = k + "." + sk if sk else k
            if (v[sk] if sk else v) == (cur[k][sk] if sk else cur[k]):  # what this request changed
                continue
            if k in _LIVE or name in _LIVE:
                run[k][sk] = v[sk]
                applied.append(name)
            else:
                reboot.append(name)
    if "http.cors_origin" in applied and getattr(app, "web", None) is not None:
        from web.api import cors

        cors(app.web, run["http"]["cors_origin"])
    if [x for x in applied if x.startswith("mqtt.")]:
        await _restart_mqtt(app)
    if [x for x in applied if x.startswith("wifi.")] and app.wifi is not None:
        _rejoin(app.wifi, run["wifi"], [x for x in applied if x in ("wifi.ssid", "wifi.password")])
    return _out(200, {"saved": True, "applied": applied, "reboot": reboot})


async def _restart_mqtt(app):
    old = app.mqtt
    app.mqtt = None
    if old is not None:
        if old in app.hub.subs:
            app.hub.subs.remove(old)
        try:
            await old.stop()  # its run() ends (the supervised task with it)
        except Exception:  # noqa: BLE001
            pass
    for x in app.hub._status:
        if x[0] == "mqtt":
            app.hub._status.remove(x)
            break
    import appstart
    from mem import unload

    try:
        appstart._start_mqtt(app)
    finally:
        unload("appstart")


def _rejoin(w, c, station):
    """Wi-Fi with the new settings: the station joins again, the access point
    opens again when it is needed (with its new password)."""
    w.ssid = c["ssid"]
    w._password = c["password"]
    w._ap_password = c["ap_password"]
    w._ap_open = c["ap_open"]
    w.stop_ap()
    if station and w.sta is not None:
        try:
            w.sta.disconnect()
        except OSError:
            pass
        w.state = "connecting"


def _scan(w):
    """The networks the station hears (the scan blocks the loop ~2 s: setup only)."""
    if w is None:
        return error(404, "no Wi-Fi on this board")
    try:
        sta = w.sta
        if sta is None:
            import network

            sta = network.WLAN(network.STA_IF)
            sta.active(True)
        found = sta.scan()  # (ssid, bssid, channel, rssi, security, hidden)
    except Exception as e:  # noqa: BLE001 - the radio is busy (connecting), out of memory
        return error(503, "scan failed: %s" % e)
    best = {}
    for x in found:
        try:
            name = bytes(x[0]).decode()
        except UnicodeError:
            continue
        if name and (name not in best or best[name]["rssi"] < x[3]):
            best[name] = {"ssid": name, "rssi": x[3], "secure": x[4] != 0}
    nets = sorted(best.values(), key=lambda n: -n["rssi"])[:20]
    return _out(200, {"networks": nets})


async def _mqtt_test(app, d):
    """CONNECT with the settings `d` over the current ones; the broker's answer."""
    import config

    cfg = config.copy_defaults()
    config.merge(cfg, {"mqtt": app.cfg["mqtt"]}, {})
    if d.get("password") == "***":
        d["password"] = app.cfg["mqtt"]["password"]
    d["enabled"] = True  # (checked as if on)
    errs = {}
    config.merge(cfg, {"mqtt": d}, errs)
    c = cfg["mqtt"]
    if not c["host"]:
        errs["mqtt.host"] = "required"
    if errs:
        return _out(422, {"errors": errs})
    import asyncio

    from net.mqtt import read_packet, wait_ms, write
    from net.mqtt_rare import connect_packet, refused, tls_context

    ok = False
    w = None
    try:
        ctx = tls_context(c["ca"], c["insecure"]) if c["tls"] else None
        r, w = await wait_ms(asyncio.open_connection(c["host"], c["port"], ssl=ctx), 10000)
        cid = (c["client_id"] or "p1-" + app.device_id) + "-test"  # not the live session's id
        user = c["user"] or None
        await write(w, connect_packet(cid, 30, user, c["password"] if user else None), 5000)
        first, body = await wait_ms(read_packet(r), 5000)
        if first >> 4 != 2 or len(body) < 2:
            answer = "not an MQTT broker's answer"
        elif body[1]:
            answer = refused(body[1])
        else:
            ok = True
            answer = "connection accepted"
            await write(w, b"\xe0\x00", 2000)  # DISCONNECT
    except Exception as e:  # noqa: BLE001 - refused, timeout, TLS, DNS: all are the answer
        answer = "%s: %s" % (type(e).__name__, e)
    finally:
        if w is not None:
            try:
                w.close()
            except Exception:  # noqa: BLE001
                pass
    return _out(200, {"ok": ok, "answer": answer})
