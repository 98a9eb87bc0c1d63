"""The columns that hold sealed (encrypted) values, and the key rotation over all of them.

Each capability registers its sealed columns in its ``AppConfig.ready()`` (core knows no
capability): ``register("pipelines.Secret", "value")``. ``rotate_key`` is the use case
behind ``obeya secrets rotate-key``:

1. a new key is written first in the key file, before the old ones (which still decrypt);
2. every sealed value is encrypted again under it, a batch per transaction;
3. every value is checked to open with the new key alone (a value sealed meanwhile by a
   server that had not yet seen the new key is sealed again);
4. only then are the old keys dropped, and the rotation recorded as an event.

Killed at any point, nothing is lost: until step 4 the old keys are still in the file.
Run again, it sees more than one key, finishes the interrupted rotation with the key
that is already first, and makes no further key.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db import models, transaction

from obeya.core import crypto, events
from obeya.core.actors import Actor

BATCH = 200
# (app_label.Model, field name) of every column that holds crypto.seal() tokens.
SEALED_COLUMNS: list[tuple[str, str]] = []


def register(model: str, field: str) -> None:
    if (model, field) not in SEALED_COLUMNS:
        SEALED_COLUMNS.append((model, field))


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: how many values it sealed again, and whether it resumed one."""

    reencrypted: int
    resumed: bool
    dropped_keys: int
    key_file: str

    def describe(self) -> str:
        finished = "finished an interrupted rotation" if self.resumed else "rotated the key"
        return (
            f"{finished}: {self.reencrypted} stored secret(s) encrypted again under the new "
            f"key, {self.dropped_keys} old key(s) dropped from {self.key_file}. Back up the "
            "key file now: backups made from here on need this key"
        )


def rotate_key(actor: Actor) -> Rotation:
    """Encrypt every sealed value under a new key, then drop the old keys (see above)."""
    path = crypto.key_file()
    keys = crypto.read_keys(path, create=True)
    resumed = len(keys) > 1
    if not resumed:
        keys = [crypto.new_key(), *keys]
        crypto.write_keys(keys, path)
    primary = keys[0]
    total = 0
    for model, field in SEALED_COLUMNS:
        total += _reseal_column(apps.get_model(model), field, keys, primary, everything=True)
    # A value sealed by a server that read the old key file just before it changed.
    for _ in range(3):
        late = sum(
            _reseal_column(apps.get_model(model), field, keys, primary, everything=False)
            for model, field in SEALED_COLUMNS
        )
        if not late:
            break
    with transaction.atomic():
        crypto.write_keys([primary], path)
        events.record(
            actor,
            "secrets.key_rotated",
            "secrets:key",
            {"reencrypted": total, "resumed": resumed, "dropped_keys": len(keys) - 1},
        )
    return Rotation(total, resumed, len(keys) - 1, str(path))


def _reseal_column(
    model: type[models.Model], field: str, keys: list[bytes], primary: bytes, *, everything: bool
) -> int:
    """Seal again under ``primary`` every value (or each one it does not open yet)."""
    done = 0
    last = 0
    manager = model._default_manager
    while True:
        with transaction.atomic():
            batch = list(
                manager.select_for_update()
                .filter(pk__gt=last)
                .exclude(**{field: ""})
                .order_by("pk")
                .values_list("pk", field)[:BATCH]
            )
            for pk, token in batch:
                if not everything and crypto.opens_with(token, primary):
                    continue
                manager.filter(pk=pk).update(**{field: crypto.reseal(token, keys)})
                done += 1
        if len(batch) < BATCH:
            return done
        last = batch[-1][0]
