"""Deterministic JSON: turn report data and SQL values into plain JSON types.

Rules (documented in docs/output-formats.md):

* ``bool``/``int``/``str``/``None`` stay as they are; a finite ``float`` stays
  as is, NaN and +-Infinity become ``null`` (they are not JSON);
* ``Decimal`` becomes a ``float`` (``null`` if not finite);
* ``datetime``/``date``/``time`` become ISO 8601 strings; ``timedelta``
  becomes a number of seconds (``float``);
* ``bytes``/``bytearray``/``memoryview`` become base64 strings;
* ``UUID``, ``Path`` and other unknown objects become ``str(value)``;
  an ``Enum`` becomes its value;
* numpy scalars (``.item()``), numpy arrays (``.tolist()``) and pyarrow
  scalars (``.as_py()``) are unwrapped, without importing either library;
* mappings become objects with string keys; lists and tuples become arrays
  in their order; sets become arrays sorted by their JSON text;
  dataclass instances become objects of their fields.

The conversion walks the value with an explicit stack (no recursion); values
nested deeper than :data:`MAX_DEPTH` raise ``ValueError`` because the JSON
encoder itself is recursive. Report documents are meant to be flat (trees as
lists of nodes with parent ids).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

__all__ = ["MAX_DEPTH", "dumps", "to_jsonable"]

#: Deepest nesting of arrays/objects accepted in a JSON document.
MAX_DEPTH = 200


def _scalar(value: Any) -> tuple[bool, Any]:
    """Convert a leaf value; return ``(True, result)``, or ``(False, container)``.

    A container (mapping, sequence, set, dataclass, unwrapped array) comes back
    as a ``dict`` or ``list`` whose items still need converting.
    """
    if isinstance(value, Enum):
        return _scalar(value.value)
    if value is None or type(value) in (bool, str):
        return True, value
    if isinstance(value, str):
        return True, str.__str__(value)
    if isinstance(value, bool):
        return True, bool(value)
    if isinstance(value, int):
        return True, int(value)
    if isinstance(value, float):
        return True, float(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return True, float(value) if value.is_finite() else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return True, value.isoformat()
    if isinstance(value, dt.timedelta):
        return True, value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True, base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return False, {_key(k): v for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return False, list(value)
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v) for v in value]
        return True, sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return False, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    for method in ("as_py", "tolist", "item"):  # pyarrow scalar, numpy array, numpy scalar
        unwrap = getattr(value, method, None)
        if callable(unwrap):
            try:
                inner = unwrap()
            except (TypeError, ValueError):
                continue
            if inner is not value and type(inner) is not type(value):
                return _scalar(inner)
    return True, str(value)


def _key(key: Any) -> str:
    """Return an object key as a string (``None`` -> ``"null"``)."""
    if isinstance(key, str):
        return key
    done, converted = _scalar(key)
    if done and converted is not None and not isinstance(converted, str):
        return json.dumps(converted)
    return "null" if converted is None else str(converted)


def to_jsonable(value: Any) -> Any:
    """Return ``value`` converted to plain JSON types (see the module rules)."""
    done, root = _scalar(value)
    if done:
        return root
    # Each stack entry is a container whose items are converted in place.
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(root, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(
                f"JSON data nested deeper than {MAX_DEPTH} levels; "
                "report documents must be flat (trees as lists with parent ids)"
            )
        keys: Any = container.keys() if isinstance(container, dict) else range(len(container))
        for k in list(keys):
            done, converted = _scalar(container[k])
            container[k] = converted
            if not done:
                stack.append((converted, depth + 1))
    return root


def dumps(value: Any) -> str:
    """Serialise ``value`` as deterministic JSON text ending in a newline.

    Keys are sorted, lists keep their order, output is indented by two spaces
    and pure ASCII (``ensure_ascii``), so control, C1 and bidi characters in
    strings appear only as ``\\uXXXX`` escapes and round-trip exactly.
    """
    return json.dumps(to_jsonable(value), sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
