"""Plain statements for hot paths, with the models' own fields converting every value.

Every job of every pipeline goes through the runner protocol's result-and-next-claim
call. On a 50-job chain the ORM spent about 8 ms per job building queries and model
instances, against about 1 ms in SQLite itself. These helpers run the same statements
straight on Django's connection: values are written with each field's
``get_db_prep_save`` and read back through the field's converters, exactly as the ORM
would, so SQLite and PostgreSQL see and give what they would through a QuerySet.

The statement texts are built once per model and column list. Use them where a path runs
per job or per request; everywhere else, the ORM reads better.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]

# Per connection (the converters are the backend's bound methods), per model.
_readers: weakref.WeakKeyDictionary[
    BaseDatabaseWrapper, dict[type[Model], list[tuple[Any, list[Converter]]]]
] = weakref.WeakKeyDictionary()


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


@lru_cache(maxsize=256)
def columns(model: type[Model], alias: str) -> str:
    """``alias.col, alias.col, …`` for every concrete field of ``model``, in field order."""
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def width(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


def lock_clause(*of: str) -> str:
    """`` FOR UPDATE OF …`` where the database locks rows (SQLite locks the whole
    database for the transaction instead: Obeya opens its transactions IMMEDIATE)."""
    if not connection.features.has_select_for_update:
        return ""
    if of and connection.features.has_select_for_update_of:
        return " FOR UPDATE OF " + ", ".join(of)
    return " FOR UPDATE"


def build(model: type[M], values: Sequence[Any]) -> M:
    """An instance of ``model`` from one row's columns as `columns` lists them."""
    readers = _readers.setdefault(connections[DEFAULT_DB_ALIAS], {})
    reader = readers.get(model)
    if reader is None:
        reader = readers[model] = [
            (
                column := field.get_col(model._meta.db_table),
                connection.ops.get_db_converters(column) + column.get_db_converters(connection),
            )
            for field in model._meta.concrete_fields
        ]
    converted = []
    for value, (column, converters) in zip(values, reader, strict=True):
        for convert in converters:
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, _names(model), converted)


@lru_cache(maxsize=256)
def _names(model: type[Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


def select(model: type[M], where: str, params: Iterable[Any], *, lock: bool = False) -> list[M]:
    """``SELECT`` every column of ``model`` ``WHERE …`` (text after the table, aliased
    ``t``, may hold ORDER BY and LIMIT); with ``lock``, the rows are locked."""
    table = quote(model._meta.db_table)
    sql = f"SELECT {columns(model, 't')} FROM {table} t {where}"  # noqa: S608 (names from the model)
    if lock:
        sql += lock_clause("t")
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return [build(model, row) for row in cursor.fetchall()]


def fetch(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Raw rows of a statement (values as the database driver gives them)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return list(cursor.fetchall())


def execute(sql: str, params: Iterable[Any]) -> int:
    """Run one statement; the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return int(cursor.rowcount)


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.concrete, f"{model.__name__}.{name} is no column"
    return field


@lru_cache(maxsize=256)
def _update_sql(model: type[Model], names: tuple[str, ...], where: tuple[str, ...]) -> str:
    table = quote(model._meta.db_table)
    sets = ", ".join(f"{quote(_field(model, n).column)} = %s" for n in names)
    conditions = " AND ".join(f"{quote(_field(model, n).column)} = %s" for n in where)
    return f"UPDATE {table} SET {sets} WHERE {conditions}"  # noqa: S608 (names from the model)


def update(
    model: type[Model], changes: dict[str, Any], where: dict[str, Any] | None = None, **keys: Any
) -> int:
    """``UPDATE`` ``changes`` (field name → value; an instance for a foreign key) on the
    rows matching every ``keys`` (field name → value, ``pk`` for the primary key) and
    ``where`` (the same, for names that are not identifiers); the number of rows changed."""
    conditions = {**(where or {}), **keys}
    changes = {n: v.pk if isinstance(v, Model) else v for n, v in changes.items()}
    names = tuple(changes)
    on = tuple("id" if n == "pk" else n for n in conditions)
    params = [_field(model, n).get_db_prep_save(v, connection) for n, v in changes.items()]
    params += [
        _field(model, n).get_db_prep_save(v, connection)
        for n, v in zip(on, conditions.values(), strict=True)
    ]
    return execute(_update_sql(model, names, on), params)


def save(instance: Model, fields: Sequence[str]) -> None:
    """Write ``fields`` of ``instance`` to its row, as ``save(update_fields=…)`` does
    (without signals: nothing in Obeya listens to saves)."""
    update(
        type(instance),
        {name: getattr(instance, _field(type(instance), name).attname) for name in fields},
        pk=instance.pk,
    )


@lru_cache(maxsize=256)
def _insert_sql(model: type[Model], names: tuple[str, ...], returning: bool) -> str:
    table = quote(model._meta.db_table)
    cols = ", ".join(quote(_field(model, n).column) for n in names)
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"  # noqa: S608 (names from the model)
    return sql + f" RETURNING {quote(model._meta.pk.column)}" if returning else sql


def insert(instance: Model) -> None:
    """``INSERT`` a new ``instance`` (every concrete field but the automatic key) and set
    its primary key, as ``save()`` of a new instance does (without signals)."""
    model = type(instance)
    fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
    names = tuple(f.name for f in fields)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    returning = connection.features.can_return_columns_from_insert
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, names, returning), params)
        key = cursor.fetchone()[0] if returning else cursor.lastrowid
    instance.pk = key
    instance._state.adding = False
    instance._state.db = connection.alias
