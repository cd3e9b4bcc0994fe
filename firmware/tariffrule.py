"""Whether a period counts for the power tariff's rule (config section `tariff`,
docs/TARIFF.md): shared by `tariff` (the monitor) and `loadscold` (the relays'
power guard). A module of its own so that neither the history job (which needs
`histcore`, not this) nor the relays' period (which needs this, not `tariff`)
brings the other's code into RAM."""

from histcore import civil


def _range(text, lo, hi):
    """'7-21' -> (7, 21); None if malformed."""
    a, _, b = text.partition("-")
    if not (a.isdigit() and b.isdigit()):
        return None
    a, b = int(a), int(b)
    return (a, b) if lo <= a <= hi and lo <= b <= hi else None


def counts(rule, lm):
    """Whether the period starting at local minute `lm` (from 2000) counts for `rule`."""
    ld = lm // 1440
    if rule["weekdays_only"] and (ld + 5) % 7 >= 5:  # (2000-01-01 was a Saturday)
        return False
    hr = _range(rule["hours"], 0, 24) or (0, 24)
    if not hr[0] <= lm % 1440 // 60 < hr[1]:
        return False
    mr = _range(rule["months"], 1, 12) or (1, 12)
    m = civil(ld)[1]
    if mr[0] <= mr[1]:
        return mr[0] <= m <= mr[1]
    return m >= mr[0] or m <= mr[1]  # (November-March)
