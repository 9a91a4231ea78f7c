"""The file of demo ingest keys (device_id -> key, JSON) that `seed_demo --device-keys` writes and the simulator
(`manage.py simulate`, bin/demo-simulator) reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from apps.devices.keys import hash_ingest_key
from apps.devices.models import Device


def device_keys_write(*, path: Path, issued_keys: dict[str, str]) -> dict[str, str]:
    """Write device_id -> ingest key as JSON: the keys issued now, plus the keys already in the file that
    still open their device (a key rotated or a device deleted since drops out). Returns what was written.

    The file holds secrets, so it is written owner-readable only, and replaced atomically so a simulator
    never reads half of it.
    """
    keys: dict[str, str] = {}
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
        except ValueError:
            earlier = {}
        if isinstance(earlier, dict):
            valid_hashes = dict(
                Device.objects.filter(device_id__in=list(earlier)).values_list("device_id", "ingest_key_hash")
            )
            keys = {
                device_id: key
                for device_id, key in earlier.items()
                if isinstance(key, str) and valid_hashes.get(device_id) == hash_ingest_key(key)
            }
    keys.update(issued_keys)
    keys = dict(sorted(keys.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(keys, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return keys
