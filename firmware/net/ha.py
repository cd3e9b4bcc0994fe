"""Home Assistant MQTT discovery: pure functions from a reading's JSON body to config
payloads, and `announce()`, the round that publishes them.

One retained config per reading the meter actually sends, all reading the one
`<base>/state` JSON through a `value_template`, so a telegram is one message;
and, for a meter with a time stamp, five for the power-tariff monitor's
`<base>/tariff` (docs/TARIFF.md) and two for the energy of the last closed
hour on `<base>/energy/hour` (docs/HISTORY.md: state class `total`, reset at
each hour's start, so HA's statistics add the hours up); and a switch per relay
of load management (docs/LOADCONTROL.md).
What every release since 2024.3 accepts (docs/MQTT.md): units as the OBIS
table gives them (kW, kWh, kvarh, V, A, GJ), except reactive power, shown in
var (the decimal point moved by the template, in text: no float) and m3
spelled m³; reactive energy has no device class. Configs of readings the
meter no longer sends are emptied. MqttService imports this module for a
discovery round and drops it after.
"""

from binascii import crc32

import log
from clock import ticks_add, ticks_ms
from net.mqtt import publish_head, write
from p1.bodyread import items, text_value
from p1.obis import MBUS, MBUS_ORDER, T, UNITS, unit_line  # (resident: no p1.table for a round)

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_HOLD = const(12)  # MqttService._n: no discovery round before this tick (net.mqtt_client)

# Tables as "|key=value|" strings: a dict's short strings would be interned and
# stay in RAM after this module is dropped; one long string goes with it.
# The device class comes from the reading's own table entry: its unit for the
# electricity lines; for M-Bus readings (which share the code 0-n:24.2.1 and,
# gas and water, the unit m3) the channel's device type in MBUS. Reactive
# energy has none: `reactive_energy` exists only since HA 2025.6 and HA 2024.x
# rejects the whole config for it.
_CLASS = "|kWh=energy|GJ=energy|kW=power|kvar=reactive_power|V=voltage|A=current|"
_MBUS_CLASS = "|3=gas|4=energy|7=water|"
# Reactive power in var, the one unit HA 2024.3 accepts for reactive_power
# (kvar came later): the kvar digits with the decimal point moved three
# places, in text. value_json holds the number as a float whose str() gives
# back the meter's digits (at most 15 of them); multiplying it would not.
_VAR = (
    "{%% set s = value_json.%s|string %%}{%% if s == 'None' %%}None{%% else %%}"
    "{%% set p = s.lstrip('-').split('.') %%}{%% set f = (p[1] if p|length > 1 else '') ~ '000' %%}"
    "{%% set r = f[3:].rstrip('0') %%}{{ '-' if s[:1] == '-' else '' }}{{ (p[0] ~ f[:3])|int }}"
    "{{ '.' ~ r if r else '' }}{%% endif %%}"
)
# Meter ident flag (first 3 letters, FLAG Association) -> manufacturer. Swedish
# Sagemcom S211/T211 send /ELL5.
_MAKER = (
    "|LGF=Landis+Gyr|LGZ=Landis+Gyr|ADN=Aidon|ELL=Sagemcom|SAG=Sagemcom|KFM=Kaifa|ISK=Iskra"
    "|KAM=Kamstrup|EMH=EMH|ESY=EasyMeter|XMX=Xemex|"
)
_UNIT_WORDS = "|kwh|kw|kvarh|kvar|v|a|m3|gj|"  # a name's last word that is its unit
# The power-tariff monitor's fields on <base>/tariff (tariff.py): "name=JSON path|..."
_TARIFF = (
    "|tariff_power_w=tariff_w|tariff_hour_average_w=hour.average_w|tariff_hour_projected_w=hour.projected_w"
    "|tariff_15min_average_w=15min.average_w|tariff_15min_projected_w=15min.projected_w|"
)


def _get(table, key):
    """The value of `key` in a "|key=value|" table, or None."""
    i = table.find("|" + key + "=")
    if i < 0:
        return None
    i += len(key) + 2
    return table[i : table.find("|", i)]


def friendly(name):
    """ "l1_voltage_v" -> "L1 voltage", "energy_import_kwh" -> "Energy import"."""
    words = name.split("_")
    if len(words) > 1 and "|" + words[-1] + "|" in _UNIT_WORDS:
        words = words[:-1]
    s = " ".join(words)
    if s[:1] == "l" and s[1:2] in "123" and s[1:2]:
        return "L" + s[1:]
    return s[:1].upper() + s[1:]


def manufacturer(ident):
    """Manufacturer name from a meter ident like "LGF5E360"; the flag itself if unknown."""
    flag = (ident or "")[:3].upper()
    return _get(_MAKER, flag) or flag or "unknown"


def model(ident):
    """Model part of the ident: "LGF5E360" -> "E360", "ISk5\\2MT382-1000" -> "MT382-1000"."""
    s = (ident or "")[4:]
    if s[:1] == "\\":
        s = s[2:]
    out = "".join(c for c in s if " " < c <= "~")
    return out or (ident or "unknown")


def _spec(name):
    """(unit, kind letter) of reading `name` in the OBIS table: kind c cumulative, i
    instantaneous, t a time stamp, another letter else; (None, None) if unknown.
    Read off `p1.obis.T` here rather than by `p1.table.by_name`: a discovery round
    is MQTT's largest cold job, and p1.table would add ~2 KB (64-bit) to it."""
    for t in MBUS:
        m = MBUS[t]
        if name == m[0]:
            return m[1], "c"
        if name == m[2]:
            return None, "t"
    i = T.find(b" " + name.encode() + b"\n")  # the name field (a code or a kind ends with " ")
    if i < 0:
        return None, None
    u = T[i - 1]
    if u != 0x2D:  # "-": no unit
        a = unit_line(u) + 3
        u = UNITS[a : UNITS.find(b"|", a)].decode()
    else:
        u = None
    return u, chr(T[i - 2])


def names():
    """Every reading name of the OBIS table, then the M-Bus names: a generator (a
    full round walks them between writes; a list would hold ~100 strings meanwhile)."""
    i = 0
    while True:
        i = T.find(b"\n", i)
        if i < 0 or i + 1 >= len(T):
            break
        j = T.find(b"\n", i + 1)
        nm = T[T.rfind(b" ", i, j) + 1 : j].decode()
        if nm != "-":
            yield nm
        i = j
    for t in MBUS_ORDER:
        yield MBUS[t][0]
        yield MBUS[t][2]


def device_class(name, unit):
    """Home Assistant device class of reading `name` (table unit `unit`), or None."""
    for t in MBUS:
        if name == MBUS[t][0]:
            return _get(_MBUS_CLASS, "%d" % t)
    return _get(_CLASS, unit) if unit else None


def _e(s):
    """`s` as the inside of a JSON string: itself when plain ASCII (nothing made), the
    rest (a topic with a quote, a non-ASCII base topic) by p1.jsonout, loaded only then."""
    for c in s:
        if c < " " or c > "~" or c == '"' or c == "\\":
            from p1.jsonout import quote

            return quote(s)[1:-1]
    return s


def _q(s):
    """`s` as a JSON string."""
    return '"%s"' % _e(s)


def _config(name, label, topic, template, device_id, base, dev, dc=None, sc=None, unit=None, more="", prec=None):
    """One sensor config as JSON text in pieces, a tuple of str (joined: the config), keys
    in sorted order as p1.jsonout writes a dict (configs are byte-identical on CPython
    and MicroPython; no dict nor JSON writer is loaded for a round). dev: the device
    block (JSON); unit: JSON text; more: the optional `"last_reset_value_template"`
    member. Pieces, each made by one `%`: the device block and the template go out as
    the strings they are, and no piece needs more than ~400 B in one block (a whole
    config, ~850 B, often found no such block in a round's fragmented heap), nor
    leaves a copy per part as adding them up would (~4 KB of garbage a config)."""
    b = _e(base)
    return (
        '{"availability_topic": "%s/status", "default_entity_id": "sensor.p1_%s", "device": ' % (b, _e(name)),
        dev,
        '%s%s, "name": "%s"%s, "state_topic": "%s%s"%s, "unique_id": "%s_%s"%s, "value_template": "'
        % (
            ', "device_class": "%s"' % dc if dc else "",
            more,
            _e(label),
            ', "state_class": "%s"' % sc if sc else "",
            b,
            _e(topic),
            "" if prec is None else ', "suggested_display_precision": %d' % prec,
            _e(device_id),
            _e(name),
            ', "unit_of_measurement": ' + unit if unit else "",
        ),
        _e(template),
        '"}',
    )


def sensor_config(name, value, device_id, base, dev):
    """The discovery config (JSON text in pieces, `_config`) of one reading `name` whose
    current value text (as in the JSON body: `896.020`, `"LGF5E360"`, `null`) is
    `value`; dev: the device block as JSON text."""
    unit, kind = _spec(name)
    var = unit == "kvar"
    template = (_VAR if var else "{{ value_json.%s }}") % name
    label = friendly(name)
    if kind == "t" or name == "timestamp":
        return _config(name, label, "/state", template, device_id, base, dev, "timestamp")
    if value[:1] in ('"', "n"):  # text, or no value yet: no unit nor class
        return _config(name, label, "/state", template, device_id, base, dev)
    dc = u = prec = None
    if unit:
        # HA's spelling; "m\u00b3" is what the JSON writer makes of m3's "m³"
        u = '"var"' if var else '"m\\u00b3"' if unit == "m3" else '"%s"' % unit
        dc = device_class(name, unit)
    if kind == "c" or kind == "i":  # exact fixed point: the meter's decimals
        dot = value.find(".")
        prec = 0 if dot < 0 else len(value) - dot - 1
        if var:
            prec = max(prec - 3, 0)
    sc = "total_increasing" if kind == "c" else "measurement"
    return _config(name, label, "/state", template, device_id, base, dev, dc, sc, u, "", prec)


def configs(body, device_id, base, prefix, sw_version, relays=()):
    """Yield (topic, payload) for every reading in a reading's JSON body, and a switch for
    each relay of `relays` ((number, name), docs/LOADCONTROL.md); a payload is a
    tuple of str pieces (`_config`), joined: the config's JSON text."""
    meter = ""
    for name, v in items(body):
        if name == "meter":
            meter = text_value(v) or ""
            break
    dev = '{"identifiers": [%s], "manufacturer": %s, "model": %s, "name": %s, "sw_version": %s}' % (
        _q(device_id),
        _q(manufacturer(meter)),
        _q(model(meter)),
        _q("P1 reader " + device_id),
        _q(sw_version),
    )
    head = "%s/sensor/%s/%%s/config" % (prefix, device_id)
    for name, v in items(body):
        if name != "meter":  # in the state, but the device block carries it
            yield head % name, sensor_config(name, v, device_id, base, dev)
    if body.startswith(b'{"timestamp": "'):  # the tariff monitor (needs the meter's time)
        for part in _TARIFF[1:-1].split("|"):
            name, _, path = part.partition("=")
            label = friendly(name).replace(" w", "").replace("15min", "15 min")
            template = "{{ value_json['%s'] }}" % path.replace(".", "']['")
            yield (
                head % name,
                _config(name, label, "/tariff", template, device_id, base, dev, "power", "measurement", '"W"'),
            )
        for way in ("import", "export"):  # the last closed hour of the history (history.py)
            name = "energy_hour_%s_wh" % way
            yield (
                head % name,
                _config(
                    name,
                    "Energy %s, last hour" % way,
                    "/energy/hour",
                    "{{ value_json.%s_wh }}" % way,  # (null in a gap: None, unknown)
                    device_id,
                    base,
                    dev,
                    "energy",
                    "total",
                    '"Wh"',
                    ', "last_reset_value_template": "{{ value_json.start }}"',
                ),
            )
    for i, (n, label) in enumerate(relays):  # on/off: an override (loads.override_s); state from <base>/relays
        name = "relay%d" % n
        yield (
            "%s/switch/%s/%s/config" % (prefix, device_id, name),
            (
                '{"availability_topic": %s, "command_topic": %s, "default_entity_id": %s, "device": '
                % (_q(base + "/status"), _q("%s/relay/%d/set" % (base, n)), _q("switch.p1_" + name)),
                dev,
                ', "name": %s, "payload_off": "off", "payload_on": "on", "state_off": "off", "state_on": "on", '
                '"state_topic": %s, "unique_id": %s, "value_template": %s}'
                % (
                    _q(label),
                    _q(base + "/relays"),
                    _q(device_id + "_" + name),
                    _q("{{ 'on' if value_json.relays[%d].on else 'off' }}" % i),
                ),
            ),
        )


def _emptied(prefix, device_id, announced):
    """(topic, ()) for every reading name whose CRC is not in `announced`: an empty
    retained config, Home Assistant drops the sensor."""
    for name in names():
        if _crc(name) not in announced:
            yield "%s/sensor/%s/%s/config" % (prefix, device_id, name), ()


def _crc(name):
    return (crc32(name.encode()) & 0x3FFFFFFF).to_bytes(4, "little")


async def announce(svc):
    """A discovery round of MqttService `svc` for the readings of the hub's latest
    sample: one retained config per reading, QoS 0. The names count as announced
    from the start: one that appears meanwhile calls for another round.

    A full round (`svc._announced` empty: the boot's first session, Home
    Assistant's `online`, `<base>/set/discovery`, or a reading gone from the
    telegrams)
    also empties the retained config of every other reading name (a meter seen
    before, before a restart too): Home Assistant removes those sensors. A
    round for a new name only adds: a meter that leaves a line out now and
    then does not make its sensor come and go.

    Returns True when the round is done. Out of memory making a config, it
    returns False: counted, the round due again after `discovery_again_ms` (the session
    goes on); out of memory handing a packet to the stream, the MemoryError
    ends the session (the packet may be cut short)."""
    body = svc.hub.sample.body
    old = svc._announced
    w, ms, prefix = svc._w, svc.write_timeout_ms, svc.cfg["discovery_prefix"]
    ld = getattr(svc.hub, "loads", None)
    cut = False  # True while a packet is handed to the stream
    try:
        # 4 bytes per name: MqttService.offer() looks for a new name's CRC in them
        new = b"".join([_crc(n) for n, _ in items(body)])
        if old:
            new += b"".join([old[i : i + 4] for i in range(0, len(old), 4) if old[i : i + 4] not in new])
        svc._announced = new
        rel = [(r[0], r[1]) for r in sorted(ld.r)] if ld is not None else ()
        for part in (
            configs(body, svc.device_id, svc.base, prefix, svc.version, rel),
            () if old else _emptied(prefix, svc.device_id, new),  # (a full round: the other names too)
        ):
            for topic, payload in part:
                # Its pieces as they are: a config is ASCII (_e escapes the rest), so
                # their length is their bytes' and no bytes copy is made beside them
                n = 0
                for p in payload:
                    n += len(p)
                head = publish_head(topic, n, 0, True)
                cut = True
                await write(w, head, ms, payload)
                cut = False
                payload = head = None  # not alive while the next config is made
    except MemoryError:
        if cut:  # a packet may be cut short: nothing may follow it, the session ends
            raise
        # Out of memory making a config: the heap is full for now (an outage's backlog,
        # the history job). The session goes on; the whole round again in a while.
        svc._announced = old
        svc._discover = True
        svc._n[_HOLD] = ticks_add(ticks_ms(), svc.discovery_again_ms)
        log.oom("mqtt: discovery")
        return False
    return True
