"""Reading the energy history back (GET /api/v1/history; cold, in the cold slot).

A period's energy is its end snapshot less its start snapshot (history.py), per
register; "ok" only when both are there, on time, and none went backwards.
Otherwise its values are null and its status says why: "gap" (a snapshot is
missing or late: no telegrams then) or "reset" (a register went backwards: the
meter was exchanged or reset). The period still running is not listed.

  ?resolution=15min|hour|day|month (default hour)
  &from=&to=   the periods that start at or after `from` and before `to`:
               YYYY-MM (month), YYYY-MM-DD, or YYYY-MM-DDTHH:MM with an optional
               +HH:MM / -HH:MM / Z (15min, hour); without one, the meter's UTC
               offset now. Defaults: to = now, from = 96, 48, 31 or 12 periods
               before it (503 before the first telegram). At most one ring's
               length of periods.
  &format=csv  CSV with a header line instead of JSON.
"""

import history as h
from mem import done, unload_new

_DEFAULT = (96, 48, 31, 12)


def parse_time(r, text, off):
    """The key of the first period of ring `r` starting at or after `text`; None if malformed."""
    t = text.strip()
    try:
        y, mo = int(t[0:4]), int(t[5:7])
        if t[4] != "-" or not 1 <= mo <= 12:
            return None
        if r == 3:
            return (y - 2000) * 12 + mo - 1
        d = int(t[8:10])
        if t[7] != "-" or not 1 <= d <= 31:
            return None
        ld = h.days(y, mo, d)
        if r == 2:
            return ld
        hm = 0
        if len(t) > 10:
            if t[10] not in "T " or t[13] != ":":
                return None
            hm = int(t[11:13]) * 60 + int(t[14:16])
            z = t[16:]
            if z == "Z":
                off = 0
            elif z:
                if z[0] not in "+-" or len(z) != 6 or z[3] != ":":
                    return None
                off = int(z[1:3]) * 60 + int(z[4:6])
                if z[0] == "-":
                    off = -off
        um = ld * 1440 + hm - off
    except (ValueError, IndexError):
        return None
    if r == 0:
        return -(-um // 15)
    s = off % 60
    return -(-(um + s) // 60)


def span(r, q, t, std_off):
    """(first key, key after the last, offset) for the query dict `q` and the latest stamp
    `t` (or None); or a str: what is wrong."""
    off = t[2] if t is not None else std_off
    end = h.period(r, t)[0] if t is not None else None
    if q.get("to"):
        end = parse_time(r, q["to"], off)
        if end is None:
            return "bad 'to'"
    if q.get("from"):
        start = parse_time(r, q["from"], off)
        if start is None:
            return "bad 'from'"
        if end is None:
            end = start + _DEFAULT[r]
    else:
        if end is None:
            return "give 'from'"
        start = end - _DEFAULT[r]
    if t is not None:
        end = min(end, h.period(r, t)[0])  # (the running period is not over)
    n = h.RINGS[r][1]
    if end - start > n:
        start = end - n
    return start, max(start, end), off


def periods(folder, r, start, end, off):
    """Yield (label, [4 values or None], status) for the periods start .. end - 1."""
    f = -1
    buf = None
    prev = None
    for k in range(start, end + 1):
        fk = (k % h.RINGS[r][1]) // h.PER
        if fk != f or buf is None:
            buf = h.load(folder, r, k)
            f = fk
        rec = h.get(buf, r, k)
        if k > start:
            a, b = prev, rec
            vals, st = h.energy(a, b)
            o = a[1] if a is not None else b[1] if b is not None else off
            yield h.label(r, k - 1, o), vals, st
        prev = rec


def body(folder, r, start, end, off, csv):
    """The response body: a generator of str pieces (JSON or CSV)."""
    if csv:
        yield "start," + ",".join(h.COLS) + ",status\r\n"
        for lab, vals, st in periods(folder, r, start, end, off):
            yield "%s,%s,%s\r\n" % (lab, ",".join("" if x is None else str(x) for x in vals), st)
        return
    yield '{"resolution": "%s", "periods": [' % h.RINGS[r][0]
    sep = ""
    for lab, vals, st in periods(folder, r, start, end, off):
        yield sep + "\n"
        yield h.json(lab, vals, st)
        sep = ","
    yield "]}\n"


def response(app, q):
    """(200, content type, body) of GET /api/v1/history with the query dict `q`, or
    (status, error text, None)."""
    names = [x[0] for x in h.RINGS]
    res = q.get("resolution") or "hour"
    if res not in names:
        return 400, "resolution: one of 15min, hour, day, month", None
    r = names.index(res)
    s = app.hub.sample
    t = h.stamp(s.body) if s is not None else None
    if t is None and not q.get("from"):
        return 503, "no telegram with a time stamp yet: give 'from'", None
    got = span(r, q, t, app.pipeline.std_offset)
    if isinstance(got, str):
        return 400, got, None
    csv = q.get("format") == "csv"
    ctype = "text/csv; charset=utf-8" if csv else "application/json"
    return 200, ctype, body(app.board.path("hist"), r, got[0], got[1], got[2], csv)


def serve(req, app, before):
    """The response to GET /api/v1/history or /api/v1/tariff (web.api, in the cold slot);
    what of web.api's _HIST was not loaded `before` is unloaded, and the slot given back,
    once the body is written (or now, for an error)."""
    from web.cold import args
    from web.server import JSON, error

    nostore = "Cache-Control: no-store\r\n"
    r = (500, "", None)
    try:
        try:
            q = args(req.qs)
        except ValueError:
            q = None
        if req.path.endswith("tariff"):
            from tariff import report

            t = report(app)
            r = (200, JSON, (t,)) if t is not None else (503, "no telegram with a time stamp yet", None)
        elif q is None:
            r = (400, "bad query", None)
        else:
            r = response(app, q)
    finally:
        if r[0] != 200:  # (the error's text was made above; 500: raised)
            _end(before)
    if r[0] != 200:
        return error(r[0], r[1], nostore)
    return 200, r[1], _body(r[2], before), nostore


def _end(before):
    unload_new(before, "histread", "history", "histcore", "fsutil", "web.cold", "tariff", "tariffrule")
    done()


def _body(gen, before):
    try:
        for piece in gen:
            yield piece
    finally:
        _end(before)
