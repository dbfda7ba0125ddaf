"""Protobuf messages as the reference's Go `encoding/json` writes them (GET /projects, GET /datums).

The reference marshals its generated Go structs directly, not through protojson: fields keep
their proto names and are left out when zero (`omitempty`), enums are numbers, bytes are base64,
and a Timestamp or Duration is the struct itself, `{"seconds": ..., "nanos": ...}`.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum

import betterproto

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def go_json(message: betterproto.Message) -> dict:
    """``message`` as a JSON-able dict in the reference's encoding (unset fields left out)."""
    return _value(message.to_pydict(casing=betterproto.Casing.SNAKE))


def _seconds_nanos(total_us: int) -> dict:
    seconds, micros = divmod(total_us, 1_000_000)
    return {k: v for k, v in (("seconds", seconds), ("nanos", micros * 1000)) if v}


def _value(v):
    if isinstance(v, dict):
        return {k.rstrip("_"): _value(x) for k, x in v.items()}  # betterproto escapes keywords with "_"
    if isinstance(v, list):
        return [_value(x) for x in v]
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return _seconds_nanos((v - _EPOCH) // dt.timedelta(microseconds=1))
    if isinstance(v, dt.timedelta):
        return _seconds_nanos(v // dt.timedelta(microseconds=1))
    if isinstance(v, enum.Enum):
        return int(v.value)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return v
