"""Loading and writing the sensors' detector states set-wise: one statement each way whatever the number of
sensors. The evaluation of a batch loads its sensors' states, runs apps.anomaly.detectors over them and
writes the changed ones back in the same transaction."""

from __future__ import annotations

import math

import numpy as np
from django.db import connection

from apps.anomaly.detectors import LAST_TS, STATE_SIZE, STATE_VERSION, new_states
from apps.anomaly.models import AnomalyState

_TABLE = AnomalyState._meta.db_table

# In the order of the ids asked for (WITH ORDINALITY), states of sensors that have none yet as NULL. Locking
# takes the rows in sensor order (the order the ids come in must be sorted) so two evaluations never wait on
# each other in a circle.
_LOAD = f"""
SELECT wanted.id, s.version, s.state
  FROM unnest(%s::bigint[]) WITH ORDINALITY AS wanted(id, position)
  LEFT JOIN {_TABLE} s ON s.sensor_id = wanted.id
 ORDER BY wanted.position
"""
_LOCK = f"""
SELECT s.sensor_id FROM unnest(%s::bigint[]) AS wanted(id) JOIN {_TABLE} s ON s.sensor_id = wanted.id
 ORDER BY s.sensor_id FOR UPDATE OF s
"""

# The states travel as one bytea, cut per row in SQL: a bytea[] parameter is quoted element by element in
# Python by the driver, which cost a third of the anomaly pass; one bytea is quoted once, in C.
_SAVE = f"""
INSERT INTO {_TABLE} (sensor_id, version, state, last_ts, updated_at)
SELECT u.sensor_id, %s, substring(%s::bytea FROM (u.n::int - 1) * {STATE_SIZE * 8} + 1 FOR {STATE_SIZE * 8}),
       to_timestamp(u.last_ts), now()
  FROM unnest(%s::bigint[], %s::float8[]) WITH ORDINALITY AS u(sensor_id, last_ts, n)
 ORDER BY u.sensor_id
    ON CONFLICT (sensor_id) DO UPDATE
   SET version = EXCLUDED.version, state = EXCLUDED.state, last_ts = EXCLUDED.last_ts, updated_at = now()
"""


def decode_state(raw: bytes | memoryview | None, version: int | None) -> np.ndarray:
    """One state vector from its stored bytes; a fresh one for none or a layout of another version."""
    if raw is None or version != STATE_VERSION or len(raw) != STATE_SIZE * 8:
        return new_states(1)[0]
    return np.frombuffer(bytes(raw), dtype="<f8").copy()


def states_load(sensor_ids: list[int], *, lock: bool = False) -> np.ndarray:
    """The states of these sensors (rows in the given order; fresh for sensors without one), in one query.
    With lock=True the existing rows are locked FOR UPDATE first (pass the ids sorted)."""
    if not sensor_ids:
        return new_states(0)
    with connection.cursor() as cursor:
        if lock:
            cursor.execute(_LOCK, [list(sensor_ids)])
        cursor.execute(_LOAD, [list(sensor_ids)])
        rows = cursor.fetchall()
    return np.vstack([decode_state(raw, version) for _, version, raw in rows])


def states_save(sensor_ids: list[int], states: np.ndarray) -> None:
    """Insert or overwrite the states of these sensors (row i is sensor_ids[i]) in one statement."""
    if not sensor_ids:
        return
    states = np.ascontiguousarray(states, dtype="<f8")
    last_ts = [None if math.isnan(value) else float(value) for value in states[:, LAST_TS]]
    with connection.cursor() as cursor:
        cursor.execute(_SAVE, [STATE_VERSION, states.tobytes(), list(sensor_ids), last_ts])
