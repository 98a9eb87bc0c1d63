"""Encrypted backups of Obeya's own database (``obeya backup --encrypt``).

The key is derived from a passphrase with scrypt (a fresh random salt per file), and the
file is encrypted with AES-256-GCM in chunks of 1 MiB, so a backup of any size streams
through a small buffer. Each chunk's nonce is its index and whether it is the last one,
and the header is authenticated with every chunk: a chunk cut, swapped, dropped or
appended, or a header edited, fails the whole restore.

    MAGIC | salt (16) | log2 N, r, p (1, 4, 4 bytes) | chunks: length (4) + ciphertext

Secret values inside the database stay sealed with the secrets key
(``obeya.core.crypto``), which is not in the backup: restore needs that key file too.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from obeya.core.errors import InvalidInput

MAGIC = b"OBEYA-BACKUP-AESGCM1\n"
CHUNK = 1024 * 1024
MIN_PASSPHRASE = 12
_LOG2_N, _R, _P = 15, 8, 1  # scrypt: 32 MiB of memory, about 0.1 s
_PARAMS = struct.Struct(">BII")
_LENGTH = struct.Struct(">I")
_TAG = 16


def is_encrypted(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(
            f"the backup passphrase needs at least {MIN_PASSPHRASE} characters",
            field="passphrase",
        )


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> AESGCM:
    if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise InvalidInput("the encrypted backup's header is damaged (scrypt parameters)")
    derived = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(passphrase.encode())
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return struct.pack(">QI", index, 1 if last else 0)


def encrypt_file(source: Path, target: BinaryIO, passphrase: str) -> None:
    """Write ``source`` encrypted under ``passphrase`` to the open file ``target``."""
    check_passphrase(passphrase)
    salt = os.urandom(16)
    header = MAGIC + salt + _PARAMS.pack(_LOG2_N, _R, _P)
    aead = _key(passphrase, salt, _LOG2_N, _R, _P)
    target.write(header)
    with source.open("rb") as plain:
        index = 0
        chunk = plain.read(CHUNK)
        while True:
            following = plain.read(CHUNK)
            last = not following
            sealed = aead.encrypt(_nonce(index, last), chunk, header)
            target.write(_LENGTH.pack(len(sealed)) + sealed)
            if last:
                return
            chunk, index = following, index + 1


def decrypt_file(source: Path, target: BinaryIO, passphrase: str) -> None:
    """Write the plain content of the encrypted backup ``source`` to ``target``."""
    damaged = f"{source} is damaged or cut short: it cannot be decrypted whole"
    with source.open("rb") as handle:
        header = handle.read(len(MAGIC) + 16 + _PARAMS.size)
        if len(header) < len(MAGIC) + 16 + _PARAMS.size or not header.startswith(MAGIC):
            raise InvalidInput(f"{source} is not an encrypted Obeya backup", field="file")
        salt = header[len(MAGIC) : len(MAGIC) + 16]
        aead = _key(passphrase, salt, *_PARAMS.unpack(header[len(MAGIC) + 16 :]))
        index = 0
        while True:
            prefix = handle.read(_LENGTH.size)
            if len(prefix) < _LENGTH.size:
                raise InvalidInput(damaged, field="file")
            (length,) = _LENGTH.unpack(prefix)
            if not _TAG <= length <= CHUNK + _TAG:
                raise InvalidInput(damaged, field="file")
            sealed = handle.read(length)
            if len(sealed) < length:
                raise InvalidInput(damaged, field="file")
            last = False
            try:
                plain = aead.decrypt(_nonce(index, False), sealed, header)
            except InvalidTag:
                try:
                    plain = aead.decrypt(_nonce(index, True), sealed, header)
                    last = True
                except InvalidTag:
                    raise InvalidInput(
                        f"cannot decrypt {source}: wrong passphrase, or the file was changed",
                        field="passphrase" if index == 0 else "file",
                    ) from None
            target.write(plain)
            if last:
                if handle.read(1):
                    raise InvalidInput(damaged, field="file")
                return
            index += 1
