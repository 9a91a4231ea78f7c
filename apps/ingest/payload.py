"""The normalised form of an ingest request, as the API hands it to the worker.

Columns rather than one object per reading keep the stored batch small and cheap to (de)serialise:

    refs    unique sensor references (see SensorRef)
    r       per reading: index into refs
    t       per reading: timestamp, integer microseconds since the Unix epoch (UTC)
    v       per reading: the value as a float, or None when it was not a number (raw text kept in `bad`)
    i       per reading: index of the request item it came from (reported with rejects)
    g       per reading: index into groups (the datagram it came in), or -1
    groups  [device external id, seq] of each device datagram that carried a seq
    bad     {reading index: raw value} for values that were not numbers (first few only)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from apps.ingest.text import printable

# Sensor references. A reading names its sensor in one of three ways, depending on the payload shape:
KEY_REF = "k"  # "k:<sensor key>"                                   - single readings
DEVICE_TYPE_REF = "d"  # "d:<device id>\x1f<type code>\x1f<channel>"  - device datagrams
DEVICE_FIELD_REF = "f"  # "f:<device id>\x1f<field name>[\x1f<channel>]" - flat records (and line protocol fields),
#                                                                   mapped by the device's adapter
SEP = "\x1f"


def key_ref(key: str) -> str:
    return f"{KEY_REF}:{key}"


def device_type_ref(device_id: str, type_code: str, channel: str = "") -> str:
    return f"{DEVICE_TYPE_REF}:{device_id}{SEP}{type_code}{SEP}{channel}"


def device_field_ref(device_id: str, field_name: str, channel: str = "") -> str:
    suffix = f"{SEP}{channel}" if channel else ""
    return f"{DEVICE_FIELD_REF}:{device_id}{SEP}{field_name}{suffix}"


def describe_ref(ref: str) -> str:
    """A readable name for a reference, for reject reports."""
    kind, _, rest = ref.partition(":")
    parts = rest.split(SEP)
    if kind == DEVICE_TYPE_REF:
        return "/".join(part for part in parts if part)
    if kind == DEVICE_FIELD_REF:
        device_id, _, named = rest.partition(SEP)
        field_name, _, channel = named.partition(SEP)
        return f"{device_id}.{field_name}" + (f"/{channel}" if channel else "")
    return rest


@dataclass
class NormalizedBatch:
    refs: list[str] = field(default_factory=list)
    r: list[int] = field(default_factory=list)
    t: list[int] = field(default_factory=list)
    v: list[float | None] = field(default_factory=list)
    i: list[int] = field(default_factory=list)
    g: list[int] = field(default_factory=list)
    groups: list[list] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)
    _ref_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.r)

    def add(self, ref: str, ts_us: int, value: float | None, item_index: int, group: int = -1) -> None:
        index = self._ref_index.get(ref)
        if index is None:
            index = self._ref_index[ref] = len(self.refs)
            self.refs.append(ref)
        self.r.append(index)
        self.t.append(ts_us)
        self.v.append(value)
        self.i.append(item_index)
        self.g.append(group)

    def add_group(self, device_id: str, seq: int) -> int:
        self.groups.append([device_id, seq])
        return len(self.groups) - 1

    def note_bad_value(self, raw: object, limit: int = 50) -> None:
        if len(self.bad) < limit:
            self.bad[str(len(self.r))] = printable(str(raw)[:100])

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "refs": self.refs,
                "r": self.r,
                "t": self.t,
                "v": self.v,
                "i": self.i,
                "g": self.g,
                "groups": self.groups,
                "bad": self.bad,
            }
        )

    @classmethod
    def loads(cls, data: bytes | memoryview) -> NormalizedBatch:
        raw = orjson.loads(bytes(data))
        return cls(
            refs=raw["refs"],
            r=raw["r"],
            t=raw["t"],
            v=raw["v"],
            i=raw["i"],
            g=raw["g"],
            groups=raw["groups"],
            bad=raw["bad"],
        )

    def extend(self, other: NormalizedBatch, positions: range | None = None) -> None:
        """Append another batch's readings, or those at `positions` (the MQTT bridge and importer merge several
        messages; the worker splits a batch to find readings the database refuses). Only the datagrams the
        appended readings came in are carried over."""
        group_map: dict[int, int] = {}
        for position in range(len(other)) if positions is None else positions:
            if str(position) in other.bad:
                self.note_bad_value(other.bad[str(position)])
            group = other.g[position]
            if group >= 0 and group not in group_map:
                group_map[group] = self.add_group(*other.groups[group])
            self.add(
                other.refs[other.r[position]],
                other.t[position],
                other.v[position],
                other.i[position],
                group_map[group] if group >= 0 else -1,
            )
