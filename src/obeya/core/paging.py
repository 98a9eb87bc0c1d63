"""Paginated API lists built from a query, one page at a time.

Django Ninja's pagination slices what a view returns and counts it. A view that returned
a list of response bodies built every row first, however many there were and however few
the page showed; `Mapped` hands the paginator the query instead, and builds the bodies of
the rows on the page alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class Mapped(Sequence[T]):
    """``rows`` seen through ``body``: counted in the database, built a page at a time."""

    def __init__(self, rows: QuerySet[Any], body: Callable[[Any], T]) -> None:
        self._rows = rows
        self._body = body

    def __len__(self) -> int:
        return self._rows.count()

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._body(row) for row in self._rows[index]]
        return self._body(self._rows[index])
