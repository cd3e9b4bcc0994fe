"""Telegram -> named readings in normalised units, exactly.

The names and units come from the table in `p1.obis`; HTTP, MQTT and Home
Assistant all read this one mapping. Unit conversion only moves the decimal
point (Wh -> kWh), so every value stays exact.
"""

try:
    from collections import OrderedDict
except ImportError:  # pragma: no cover
    OrderedDict = dict

from p1.obis import MBUS, MBUS_ORDER
from p1.table import lookup, unit_shift
from p1.values import Num


def convert(v, unit):
    """Num in any unit of `unit`'s family -> Num in `unit`; None if not convertible."""
    if not isinstance(v, Num):
        return None
    shift = unit_shift(unit, v.unit)
    if shift is None:
        return None
    if not shift and v.unit == unit:
        return v  # already exact in the table's unit (Num is never mutated)
    return v.shifted(shift, unit)


def readings(t):
    """OrderedDict: timestamp, meter, then every named reading present.

    Values are Num (numbers, in the table's unit), int or str. Objects whose
    unit does not fit were already reported by the parser and are left out.
    """
    out = OrderedDict()
    out["timestamp"] = None
    out["meter"] = t.ident
    objects = t.objects
    types = None  # M-Bus channel -> device type, gathered on first need
    for code in objects:
        e = lookup(code)
        if e is None:
            continue
        name, unit, kind = e
        vals = objects[code]
        if kind == "mbus":
            if types is None:
                types = _mbus_types(objects)
            _mbus(out, types.get(code[2 : code.find(":")]), vals)
            continue
        if name is None or kind == "mbus_type" or len(vals) != 1:
            continue
        v = vals[0]
        if kind == "cum" or kind == "inst":
            v = convert(v, unit)
            if v is None:
                continue
        elif v == "" and kind != "str":
            continue
        out[name] = v
    return out


def _mbus_types(objects):
    types = {}
    for code in objects:
        e = lookup(code)
        if e is not None and e[2] == "mbus_type":
            types[code[2 : code.find(":")]] = objects[code][0]
    return types


def _mbus(out, dev_type, vals):
    v = vals[-1]
    if len(vals) < 2 or not isinstance(v, Num):
        return  # a dead channel sends (00000000) without unit
    if not v.unit and isinstance(vals[-2], str):  # DSMR 2/3: (m3)(00000.000)
        v = Num(v.value, v.decimals, vals[-2])
    spec = MBUS.get(dev_type)
    if spec is None:  # no device type line: guess by unit
        for t in MBUS_ORDER:
            if unit_shift(MBUS[t][1], v.unit) is not None:
                spec = MBUS[t]
                break
    if spec is None or spec[0] in out:
        return
    v = convert(v, spec[1])
    if v is not None:
        out[spec[0]] = v
        out[spec[2]] = vals[0] if vals[0] != "" else None
