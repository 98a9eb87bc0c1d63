"""Secrets at rest: Fernet tokens under keys kept in a file apart from the database.

The key file (``OBEYA_SECRETS_KEY_FILE``, by default ``<data dir>/keys/secrets.key``) holds
one Fernet key a line. The first key encrypts; every key decrypts (``MultiFernet``), so a
rotation can write a new first key, re-encrypt every sealed value, and only then drop the
old ones (``obeya.core.sealed``). The file is created, mode 0600, the first time a value is
sealed; it is never stored in the database and has nothing to do with Django's SECRET_KEY,
so a copy of the database (a backup, a stolen disk image of the database alone) reveals no
secret.

The keys are read again whenever the file changes (its inode, size or modification time),
so a rotation done by ``obeya secrets rotate-key`` reaches a running server at once.

An empty value stays empty: "no webhook secret" must stay recognisable without a key.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from obeya.core.errors import ObeyaError

DEFAULT_KEY_FILE = Path("keys") / "secrets.key"


class SecretsKeyError(ObeyaError):
    """The secrets key file is missing, unreadable, or does not open a stored value.

    A server problem, not the caller's: it answers 500 with the key file named.
    """

    status = 500
    code = "secrets_key"


def key_file() -> Path:
    """Where the keys are: OBEYA_SECRETS_KEY_FILE, or keys/secrets.key in the data dir."""
    configured = str(getattr(settings, "OBEYA_SECRETS_KEY_FILE", "") or "")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(settings.DATA_DIR) / DEFAULT_KEY_FILE


_lock = threading.Lock()
# path -> ((inode, size, mtime_ns), keys): read again only when the file changed.
_cache: dict[Path, tuple[tuple[int, int, int], list[bytes]]] = {}


def read_keys(path: Path | None = None, *, create: bool = False) -> list[bytes]:
    """The keys in the key file, first (encrypting) key first.

    With ``create``, a missing file is made with one new key; without, a missing file is
    a SecretsKeyError (a value cannot be decrypted by a key made up now).
    """
    path = path or key_file()
    with _lock:
        try:
            stat = path.stat()
        except FileNotFoundError:
            if not create:
                raise SecretsKeyError(
                    f"the secrets key file {path} is missing: stored secrets cannot be "
                    "decrypted without it. Restore it from your backup (or set "
                    "OBEYA_SECRETS_KEY_FILE to where it is)"
                ) from None
            _create(path)
            stat = path.stat()
        except OSError as error:
            raise SecretsKeyError(
                f"cannot read the secrets key file {path}: {error.strerror}"
            ) from None
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = _cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        keys = _parse(path)
        _cache[path] = (signature, keys)
        return keys


def _parse(path: Path) -> list[bytes]:
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as error:
        raise SecretsKeyError(f"cannot read the secrets key file {path}: {error}") from None
    keys = [line.encode("ascii") for line in lines]
    if not keys:
        raise SecretsKeyError(f"the secrets key file {path} holds no key")
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretsKeyError(
                f"line {number} of the secrets key file {path} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: when two processes seal their first value together, one key wins.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(path.parent)


def write_keys(keys: list[bytes], path: Path | None = None) -> None:
    """Replace the key file with ``keys`` (first encrypts), atomically and durably."""
    path = path or key_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(key + b"\n" for key in keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        _fsync_dir(path.parent)
    finally:
        partial.unlink(missing_ok=True)
    with _lock:
        _cache.pop(path, None)


def new_key() -> bytes:
    return Fernet.generate_key()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- sealing values ----------------------------------------------------------------------


def seal(text: str) -> str:
    """``text`` encrypted under the first key (a Fernet token, ASCII); "" stays ""."""
    if not text:
        return ""
    keys = read_keys(create=True)
    return Fernet(keys[0]).encrypt(text.encode("utf-8", "surrogatepass")).decode("ascii")


def unseal(token: str) -> str:
    """The text sealed in ``token``; SecretsKeyError (naming the key file) when no key opens it."""
    if not token:
        return ""
    path = key_file()
    keys = read_keys(path)
    try:
        plain = MultiFernet([Fernet(key) for key in keys]).decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsKeyError(
            f"a stored secret cannot be decrypted with the keys in {path}: the key file was "
            "replaced or lost since the secret was stored. Put back the key file that was in "
            "use (from your backup), or set the secret again"
        ) from None
    return plain.decode("utf-8", "surrogatepass")


def reseal(token: str, keys: list[bytes]) -> str:
    """``token`` encrypted again under ``keys[0]``, opened with any of ``keys``."""
    try:
        return (
            MultiFernet([Fernet(key) for key in keys]).rotate(token.encode("ascii")).decode("ascii")
        )
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsKeyError(
            f"a stored secret cannot be decrypted with the keys in {key_file()}: nothing "
            "was dropped; put back the key file that sealed it, then rotate again"
        ) from None


def opens_with(token: str, key: bytes) -> bool:
    """Whether ``key`` alone decrypts ``token``."""
    try:
        Fernet(key).decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        return False
    return True
