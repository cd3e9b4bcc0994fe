"""The meter pipeline's rare path (cold: loaded for a telegram the one-pass
encoder `p1.body` declined -- a malformed line, a DSMR 2/3 layout -- and
dropped after it): the general decoder, `p1.parse` + `p1.readings`."""

from mem import loaded, unload_new

_GENERAL = ("p1.parse", "p1.readings", "p1.values", "p1.jsonout", "p1.table", "p1.bodyread")


def general(pl, raw, crc):
    """The general decoder for Pipeline `pl`: (body, cut); counts malformed lines."""
    pl.general += 1
    before = loaded(*_GENERAL)
    try:
        from p1.bodyread import cut_of
        from p1.jsonout import dumps
        from p1.parse import parse
        from p1.readings import readings

        t = parse(raw, crc, pl.std_offset)
        body = dumps(readings(t)).encode()
    finally:  # give its code's RAM back (what was loaded before stays)
        unload_new(before, *_GENERAL)
    if t.errors:
        pl.line_errors += len(t.errors)
        line, why = t.errors[-1]
        pl.last_error = "%s: %s" % (why, line[:60])
    return body, cut_of(body)
