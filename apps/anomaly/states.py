"""Loading and writing the sensors' detector states set-wise: one statement each way whatever the number of
sensors. The evaluation of a batch loads its sensors' states, runs apps.anomaly.detectors over them and
writes the changed ones back in the same transaction."""

from __future__ import annotations

import math

import numpy as np

from apps.anomaly.detectors import LAST_TS, STATE_SIZE, STATE_VERSION, new_states
from apps.anomaly.models import AnomalyState
from apps.core.sql import binary_cursor

_TABLE = AnomalyState._meta.db_table

# The stored states of the sensors asked for, in sensor order; sensors without one have no row. With FOR UPDATE
# the rows are locked in that order, so two evaluations never wait on each other in a circle. Loading and
# locking are one statement: the rows come back as they are once the locks are held (READ COMMITTED re-reads a
# row a concurrent evaluation changed while this one waited).
_LOAD = f"""
SELECT s.sensor_id, s.version, s.state
  FROM {_TABLE} s
 WHERE s.sensor_id IN (SELECT unnest(%s::bigint[]))
 ORDER BY s.sensor_id
"""
_LOCK = _LOAD + " FOR UPDATE OF s"

# The states travel as one bytea, cut per row in SQL: a bytea[] parameter costs the driver a Python step per
# element. Bound in binary (apps/core/sql.py) it is sent as it is, where Django's client-side binding would
# write it into the statement as hex for the server to parse: a third of the statement's time.
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
    With lock=True the existing rows are locked FOR UPDATE as they are read."""
    states = new_states(len(sensor_ids))
    if not sensor_ids:
        return states
    with binary_cursor() as cursor:
        cursor.execute(_LOCK if lock else _LOAD, [list(sensor_ids)])
        rows = cursor.fetchall()
    # The current layout's states decoded together, from their bytes joined once; any other is started afresh.
    size = STATE_SIZE * 8
    current = [(sensor_id, raw) for sensor_id, version, raw in rows if version == STATE_VERSION and len(raw) == size]
    if current:
        position = {sensor_id: index for index, sensor_id in enumerate(sensor_ids)}
        where = np.fromiter((position[sensor_id] for sensor_id, _ in current), dtype=np.intp, count=len(current))
        joined = b"".join(bytes(raw) for _, raw in current)
        states[where] = np.frombuffer(joined, dtype="<f8").reshape(len(current), STATE_SIZE)
    return states


def states_save(sensor_ids: list[int], states: np.ndarray) -> None:
    """Insert or overwrite the states of these sensors (row i is sensor_ids[i]) in one statement."""
    if not sensor_ids:
        return
    states = np.ascontiguousarray(states, dtype="<f8")
    last_ts = [None if math.isnan(value) else float(value) for value in states[:, LAST_TS]]
    with binary_cursor() as cursor:
        cursor.execute(_SAVE, [STATE_VERSION, states.tobytes(), list(sensor_ids), last_ts])
