"""Gzip of a page whose big middle part is compressed once, with a per-request value in it.

A busy page (the board: 120-220 KB of HTML) is mostly the same for every reader until it
changes, but its forms carry the reader's CSRF token. Compressing the whole page on every
request cost ~0.8 ms of CPU, as much as the rest of the page together. Here the middle
part is deflated once, with a placeholder in each of its slots, and each request adds only
its own head and tail (compressed then, a few KB) and the value of its slots:

- The middle part goes through one compressor with a placeholder of the slot's length in
  each slot, flushed (``Z_SYNC_FLUSH``: complete blocks, ending on a byte boundary) before
  and after each placeholder, and the placeholder's own output left out. What follows a
  slot may refer back to text before it at the right distance, and never into a slot: the
  placeholder is bytes that UTF-8 text never holds (0xFF), so nothing matches them.
- The first slot's value is sent as a stored (uncompressed) block; each later slot is one
  back-reference to the slot before, made by hand (a fixed-Huffman block): the same value
  again, ~10 bytes, whatever the value is. So the middle part's compressed bytes do not
  depend on the value at all, and neither does the value's size depend on the page (the
  BREACH attack reads secrets from how well they compress with text an attacker chose).
- Head and tail get compressors of their own (no reference crosses into or out of them),
  and the gzip trailer's CRC-32 and length are of the text as sent.

A deflate stream is a sequence of blocks, each decoded against the text decoded so far;
so the concatenation is one valid stream, and any gzip reader decodes it.
"""

from __future__ import annotations

import secrets
import struct
import zlib
from dataclasses import dataclass

PLACEHOLDER_BYTE = b"\xff"  # never in UTF-8 text
WINDOW = 32_768  # the farthest a deflate back-reference reaches
_RAW = -15  # zlib's wbits for raw deflate (no zlib header): gzip adds its own
# Like Django's GZipMiddleware (against BREACH): a file name of random length in the header.
MAX_RANDOM_BYTES = 100


@dataclass(frozen=True)
class SlottedText:
    """A text with slots that all take one value of ``slot_length`` bytes, and its deflate.

    ``parts`` is the text between the slots (one more than there are slots). ``deflated``
    is raw deflate of it, in pieces: ``None`` where the value goes as a stored block (the
    first slot, or a slot too far from the one before), bytes elsewhere.
    """

    parts: tuple[bytes, ...]
    slot_length: int
    deflated: tuple[bytes | None, ...]

    def filled(self, value: bytes) -> bytes:
        """The text with ``value`` in every slot."""
        return value.join(self.parts)


def slotted(parts: list[bytes], slot_length: int, level: int = 9) -> SlottedText:
    """``parts`` (the text between the slots, none holding a 0xFF byte) deflated once."""
    if slot_length < 3 or slot_length > 258:
        raise ValueError(f"a slot is 3 to 258 bytes long, not {slot_length}")
    if any(PLACEHOLDER_BYTE in part for part in parts):
        raise ValueError("the text holds a 0xFF byte: it is not UTF-8")
    compressor = zlib.compressobj(level, zlib.DEFLATED, _RAW, 9)
    placeholder = PLACEHOLDER_BYTE * slot_length
    deflated: list[bytes | None] = []
    for number, part in enumerate(parts):
        if number:
            # Slot number-1, between the part before and this one.
            compressor.compress(placeholder)
            compressor.flush(zlib.Z_SYNC_FLUSH)  # its output is replaced by the value's
            distance = slot_length + len(parts[number - 1])
            if number == 1 or distance > WINDOW:
                deflated.append(None)
            else:
                deflated.append(_copy_block(slot_length, distance))
        deflated.append(compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH))
    return SlottedText(tuple(parts), slot_length, tuple(deflated))


def gzipped(head: bytes, middle: SlottedText, value: bytes, tail: bytes, level: int = 6) -> bytes:
    """One gzip member of ``head``, ``middle`` with ``value`` in each slot, and ``tail``."""
    if len(value) != middle.slot_length:
        raise ValueError(f"the value is {len(value)} bytes; the slots take {middle.slot_length}")
    crc = zlib.crc32(head)
    for number, part in enumerate(middle.parts):
        if number:
            crc = zlib.crc32(value, crc)
        crc = zlib.crc32(part, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + sum(map(len, middle.parts)) + len(value) * (len(middle.parts) - 1)
    size += len(tail)
    stored = _stored_block(value)
    return b"".join(
        (
            _header(level),
            _deflated(head, level, zlib.Z_SYNC_FLUSH),
            *(stored if piece is None else piece for piece in middle.deflated),
            _deflated(tail, level, zlib.Z_FINISH),
            struct.pack("<II", crc, size & 0xFFFFFFFF),
        )
    )


def _header(level: int) -> bytes:
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0
    name = b"a" * secrets.randbelow(MAX_RANDOM_BYTES) + b"\x00"
    # Magic, deflate, FNAME; mtime 0; extra flags; OS unknown (as Python's gzip writes).
    return b"\x1f\x8b\x08\x08" + b"\x00\x00\x00\x00" + bytes((extra_flags, 255)) + name


def _deflated(text: bytes, level: int, flush: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, _RAW, 9)
    return compressor.compress(text) + compressor.flush(flush)


def _stored_block(value: bytes) -> bytes:
    """A non-final stored block of ``value``, begun on a byte boundary."""
    return b"\x00" + struct.pack("<HH", len(value), len(value) ^ 0xFFFF) + value


# Deflate's length codes 257-285 and distance codes 0-29: (base, extra bits) of each.
_LENGTHS = [(3 + n, 0) for n in range(8)]
_LENGTHS += [
    ((4 << (n // 4 + 1)) + 3 + (n % 4) * (1 << (n // 4 + 1)), n // 4 + 1) for n in range(20)
]
_LENGTHS += [(258, 0)]
_DISTANCES = [(1 + n, 0) for n in range(4)]
_DISTANCES += [(((2 + n % 2) << (n // 2 + 1)) + 1, n // 2 + 1) for n in range(26)]


def _code(value: int, table: list[tuple[int, int]]) -> tuple[int, int, int]:
    """(code, extra bits, their value) of a length or distance."""
    for code in range(len(table) - 1, -1, -1):
        base, extra = table[code]
        if value >= base:
            return code, extra, value - base
    raise ValueError(value)


def _copy_block(length: int, distance: int) -> bytes:
    """A non-final fixed-Huffman block copying ``length`` bytes from ``distance`` back,
    then an empty stored block, as Z_SYNC_FLUSH ends: so it ends on a byte boundary."""
    bits = _Bits()
    bits.put(0, 1)  # BFINAL: not the last block
    bits.put(1, 2)  # BTYPE 01: fixed Huffman codes
    code, extra, rest = _code(length, _LENGTHS)
    symbol = 257 + code
    # Fixed codes: 256-279 are 7 bits (0000000 + n), 280-287 are 8 bits (11000000 + n).
    if symbol <= 279:
        bits.put_code(symbol - 256, 7)
    else:
        bits.put_code(0b11000000 + symbol - 280, 8)
    bits.put(rest, extra)
    code, extra, rest = _code(distance, _DISTANCES)
    bits.put_code(code, 5)
    bits.put(rest, extra)
    bits.put_code(0, 7)  # end of block (256)
    bits.put(0, 3)  # an empty stored block: BFINAL 0, BTYPE 00, ...
    return bits.aligned() + b"\x00\x00\xff\xff"  # ... from a byte boundary: LEN 0, NLEN


class _Bits:
    """Bits packed as deflate packs them: from each byte's least significant bit up."""

    def __init__(self) -> None:
        self._value = 0
        self._count = 0

    def put(self, value: int, count: int) -> None:
        self._value |= value << self._count
        self._count += count

    def put_code(self, code: int, count: int) -> None:
        """A Huffman code: its most significant bit first."""
        reversed_code = int(format(code, f"0{count}b")[::-1], 2) if count else 0
        self.put(reversed_code, count)

    def aligned(self) -> bytes:
        return self._value.to_bytes((self._count + 7) // 8, "little")
