"""Read the dongle with python-homewizard-energy, the client Home Assistant's
HomeWizard integration uses (in `.venv-ha`, the version HA 2024.3.3 pins), run
by test_homewizard.py with that venv's Python. Not a test module itself.

    hw_client.py HOST:PORT  ->  JSON {"device": {...}, "data": {...}} on stdout

Every field of the client's Device and Data objects; floats as their repr
(the digits the client parsed), datetimes in ISO, external devices as dicts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from datetime import datetime
from enum import Enum

from homewizard_energy import HomeWizardEnergy


def plain(v):
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Enum):
        return v.name
    if dataclasses.is_dataclass(v):
        return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


async def main(host: str) -> None:
    async with HomeWizardEnergy(host) as api:
        device = await api.device()
        data = await api.data()
    json.dump({"device": plain(device), "data": plain(data)}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
