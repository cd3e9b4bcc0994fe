"""/api/v1/relays (cold: web.api imports it for one request and drops it;
docs/LOADCONTROL.md).

  GET  /api/v1/relays   the relays, the guards and the last decisions (as on
                        MQTT <base>/relays); 404 when no relay is configured
  POST /api/v1/relays   {"relay": 1, "mode": "on"|"off"|"auto"[, "expiry_s": 600]}:
                        a manual override (until expiry_s, default
                        loads.override_s) or back to the rules -> the state;
                        422 {"errors": {...}} for a bad field. Needs the admin
                        login (403 before a password is set, 401 without a
                        session), like the config API.
"""

from web.server import JSON, error

NOSTORE = "Cache-Control: no-store\r\n"


def handle(req, app):
    """The response (a tuple) to a request for /api/v1/relays."""
    from web import auth

    m = req.method
    if m not in ("GET", "HEAD", "POST"):
        return error(405, None, "Allow: GET, HEAD, POST\r\n")
    ld = app.loads
    if m != "POST":
        if app.cfg["http"].get("auth_readings") and not auth.ok(req, app):
            return error(401, "login required")
        if ld is None:
            return error(404, "no relay configured")
        return 200, JSON, ld.text(), NOSTORE
    why = auth.refused(req, app)
    if why:
        return error(*why)
    if ld is None:
        return error(404, "no relay configured")
    d = None
    if req.headers.get("content-type", "").startswith(JSON):
        import json

        try:
            d = json.loads(req.body)
        except ValueError:
            pass
    if not isinstance(d, dict):
        return error(400, "expected a JSON object (Content-Type: application/json)")
    errs = ld.cold("override", d.get("relay"), d.get("mode"), d.get("expiry_s"), "http")
    if errs:
        from p1.jsonout import dumps

        return 422, JSON, dumps({"errors": errs}), NOSTORE
    return 200, JSON, ld.text(), NOSTORE
