"""A page gzipped from a part compressed once with slots, and a head and tail compressed per
request: what any gzip reader decodes is the page with the value in every slot."""

from __future__ import annotations

import gzip
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.web import gzip_slots

# HTML-like text, in UTF-8 (so never a 0xFF byte), repetitive enough to be compressed.
TEXT = st.lists(
    st.sampled_from(["<li class=", '"card">', "é", "S-12", " ", "\n", "<form>", "≈"]),
    max_size=400,
).map(lambda words: "".join(words).encode())
VALUES = st.binary(min_size=1, max_size=258).filter(lambda value: len(value) >= 3)


@settings(max_examples=200, deadline=None)
@given(
    head=st.binary(max_size=300),
    parts=st.lists(TEXT, min_size=1, max_size=8),
    value=VALUES,
    tail=st.binary(max_size=300),
)
def test_what_is_decoded_is_head_the_part_with_the_value_in_each_slot_and_tail(
    head: bytes, parts: list[bytes], value: bytes, tail: bytes
) -> None:
    middle = gzip_slots.slotted(parts, len(value))
    sent = gzip_slots.gzipped(head, middle, value, tail)
    assert gzip.decompress(sent) == head + value.join(parts) + tail
    # As a browser reads it: a stream, in small pieces.
    reader = zlib.decompressobj(wbits=31)
    pieces = [reader.decompress(sent[at : at + 7]) for at in range(0, len(sent), 7)]
    assert b"".join(pieces) + reader.flush() == head + value.join(parts) + tail
    assert reader.eof and not reader.unused_data


def test_slots_further_apart_than_deflate_reaches_take_the_value_again() -> None:
    far = b"<p>" + bytes(range(32, 127)) * 400 + b"</p>"  # 38 KB: beyond the 32 KB window
    parts = [b"a", b"b" * 10, far, b"c", b""]
    middle = gzip_slots.slotted(parts, 64)
    assert middle.deflated.count(None) == 2  # the first slot, and the one after `far`
    value = bytes(range(64))
    assert gzip.decompress(gzip_slots.gzipped(b"", middle, value, b"")) == value.join(parts)


def test_the_part_compressed_once_does_not_depend_on_the_value() -> None:
    parts = [b"<form>" * 50, b'"><form>' * 50, b"</form>" * 50]
    middle = gzip_slots.slotted(parts, 64)
    one = gzip_slots.gzipped(b"<head>", middle, b"x" * 64, b"</html>")
    other = gzip_slots.gzipped(b"<head>", middle, b"y" * 64, b"</html>")
    assert gzip.decompress(one) != gzip.decompress(other)
    # The value is sent once as it is; every other slot copies it from the one before.
    assert one.count(b"x" * 64) == 1 and other.count(b"y" * 64) == 1


def test_a_random_length_file_name_in_each_header_as_django_writes() -> None:
    middle = gzip_slots.slotted([b"page " * 100], 64)
    lengths = {len(gzip_slots.gzipped(b"", middle, b"v" * 64, b"")) for _ in range(50)}
    assert len(lengths) > 5


def test_text_that_is_not_utf8_and_values_of_another_length_are_refused() -> None:
    with pytest.raises(ValueError, match="0xFF"):
        gzip_slots.slotted([b"a\xffb", b"c"], 64)
    with pytest.raises(ValueError, match="3 to 258"):
        gzip_slots.slotted([b"a", b"b"], 300)
    middle = gzip_slots.slotted([b"a", b"b"], 64)
    with pytest.raises(ValueError, match="the slots take 64"):
        gzip_slots.gzipped(b"", middle, b"short", b"")


def test_gnu_gzip_reads_it_too() -> None:
    """Another inflate than zlib's (browsers each have theirs): GNU gzip's own."""
    parts = [b"<li>" + bytes(range(32, 127)) * (n + 1) + b"</li>" for n in range(40)]
    middle = gzip_slots.slotted([*parts, b"<p>" * 20000], 64)
    value = b"T" * 64
    sent = gzip_slots.gzipped(b"<html>" * 100, middle, value, b"</html>")
    read = subprocess.run(["gzip", "-dc"], input=sent, capture_output=True, check=True)
    assert read.stdout == b"<html>" * 100 + value.join([*parts, b"<p>" * 20000]) + b"</html>"
