"""Home Assistant's own judgement of discovery configs, run with the Python of
`.venv-ha` (made by `make`: homeassistant pinned, see the Makefile) by
test_home_assistant.py. Not a test module itself.

stdin: JSON `[{"state": <state payload text>, "configs": {<topic>: <config payload text>}}, ...]`
stdout: JSON, the same list, each config's result as
  {"error": schema error or null, "dropped": keys the schema drops,
   "warnings": what HA's sensor entity logs about unit and state class,
   "numeric": HA expects a number, "rendered": the value_template's output,
   "last_reset": the last_reset_value_template's output as HA's sensor parses it
   (ISO text), or null}

What is checked is what the MQTT integration does with a discovery message and
a state message: the sensor platform's DISCOVERY_SCHEMA (voluptuous, drops
unknown keys), the device class's units and state classes (the sensor entity
logs a warning for others), and MqttValueTemplate rendering the value_template
against the state payload with HA's template engine. A `.../switch/...` topic
(load management's relays) is checked against the switch platform's schema.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

from homeassistant.components.mqtt.models import MqttValueTemplate, PayloadSentinel
from homeassistant.components.mqtt.sensor import DISCOVERY_SCHEMA
from homeassistant.components.mqtt.switch import DISCOVERY_SCHEMA as SWITCH_SCHEMA
from homeassistant.components.sensor import _numeric_state_expected
from homeassistant.components.sensor.const import DEVICE_CLASS_STATE_CLASSES, DEVICE_CLASS_UNITS
from homeassistant.const import __version__
from homeassistant.core import HomeAssistant
from homeassistant.helpers.template import Template
from homeassistant.util import dt as dt_util


def check(hass: HomeAssistant, payload: str, state: str, schema=DISCOVERY_SCHEMA) -> dict:
    raw = json.loads(payload)
    out: dict = {"error": None, "dropped": [], "warnings": [], "numeric": False, "rendered": None, "last_reset": None}
    try:
        cfg = schema(raw)
    except Exception as e:  # noqa: BLE001 - voluptuous.Invalid and friends: the reason is the result
        out["error"] = str(e)
        return out
    out["dropped"] = sorted(set(raw) - set(cfg))
    dc, sc, unit = cfg.get("device_class"), cfg.get("state_class"), cfg.get("unit_of_measurement")
    if dc is not None:
        units = DEVICE_CLASS_UNITS.get(dc)
        if units is not None and unit not in units:
            out["warnings"].append(f"{unit!r} is not a valid unit for device class {dc!r}")
        classes = DEVICE_CLASS_STATE_CLASSES.get(dc)
        if sc is not None and classes is not None and sc not in classes:
            out["warnings"].append(f"state class {sc!r} is not valid for device class {dc!r}")
    out["numeric"] = _numeric_state_expected(dc, sc, unit, cfg.get("suggested_display_precision"))
    tpl = cfg["value_template"]  # (a Template after the schema)
    rendered = MqttValueTemplate(Template(tpl.template, hass), hass=hass).async_render_with_possible_json_value(
        state, PayloadSentinel.DEFAULT
    )
    out["rendered"] = None if rendered is PayloadSentinel.DEFAULT else str(rendered)
    lr = cfg.get("last_reset_value_template")
    if lr is not None:  # as the MQTT sensor does: rendered, then dt_util.parse_datetime
        if sc != "total":
            out["warnings"].append("last_reset without state class 'total'")
        text = MqttValueTemplate(Template(lr.template, hass), hass=hass).async_render_with_possible_json_value(state)
        when = dt_util.parse_datetime(str(text))
        out["last_reset"] = when.isoformat() if when is not None else None
    return out


async def main() -> None:
    cases = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        results = [
            {"version": __version__, "configs": {t: check(hass, p, c["state"], SWITCH_SCHEMA if "/switch/" in t else DISCOVERY_SCHEMA)
                                                    for t, p in c["configs"].items()}}
            for c in cases
        ]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
