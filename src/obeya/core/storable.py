"""Which values a request may hand to the database at all, whatever the field.

SQLite and PostgreSQL both refuse some values outright, and their drivers say so with an
exception that would otherwise surface as a 500:

- whole numbers outside 64 bits (SQLite: "Python int too large to convert to SQLite
  INTEGER"; PostgreSQL: "bigint out of range");
- the NUL character (PostgreSQL text cannot hold it);
- a lone surrogate (``"\\ud800"`` is valid JSON, but not a character: it has no UTF-8 form);
- NaN and the infinities (JSON's ``NaN`` and ``Infinity`` are accepted by Python's parser;
  SQLite stores NaN as NULL, and no timer or limit means anything with them).

`refusal` finds the first such value in what a request carried, and names where it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def refusal(value: Any, where: str = "") -> tuple[str, str] | None:
    """(field, sentence) for the first value in ``value`` no database can store, or None.

    Walks strings, numbers, lists, tuples, sets, mappings and objects with a ``__dict__``
    (pydantic models, dataclasses), so one call covers a request's every parameter.
    """
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return where, (
            f"{_named(where)}{value} is out of range: whole numbers go from "
            f"{INT64_MIN} to {INT64_MAX}"
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return where, f"{_named(where)}numbers must be finite, not {value}"
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = refusal(key, where) or refusal(item, _join(where, str(key)))
            if found:
                return found
        return None
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = refusal(item, _join(where, str(index)))
            if found:
                return found
        return None
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict) and not isinstance(value, type):
        return refusal({k: v for k, v in fields.items() if not k.startswith("_")}, where)
    return None


def _text(value: str, where: str) -> tuple[str, str] | None:
    found = _NOT_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return where, f"{_named(where)}text may not contain the NUL character (\\u0000)"
    code = f"\\u{ord(found.group()):04x}"
    return where, (
        f"{_named(where)}text holds a lone surrogate ({code}), which is not a character: "
        "send valid UTF-8"
    )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _named(where: str) -> str:
    return f"{where}: " if where else ""
