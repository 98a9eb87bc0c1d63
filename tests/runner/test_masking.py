"""Secrets never reach the log: plain, encoded, or split across writes (RELIABILITY C1)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.runner.masking import MASK, Masker

# Chosen so every encoding differs from the plain value: '/', '+', ' ', '"', '\', non-ASCII.
SECRET = 'p@ss w/rd+"é\\?>>'
RAW = SECRET.encode()


def stream(masker: Masker, chunks: Iterable[bytes]) -> bytes:
    return b"".join(masker.feed(chunk) for chunk in chunks) + masker.flush()


def forms() -> dict[str, bytes]:
    return {
        "plain": RAW,
        "base64": base64.b64encode(RAW),
        "base64-unpadded": base64.b64encode(RAW).rstrip(b"="),
        "urlsafe-base64": base64.urlsafe_b64encode(RAW),
        "urlsafe-base64-unpadded": base64.urlsafe_b64encode(RAW).rstrip(b"="),
        "base64-of-echo": base64.b64encode(RAW + b"\n"),
        "quote": quote(SECRET, safe="").encode(),
        "quote-keep-slash": quote(SECRET).encode(),
        "quote_plus": quote_plus(SECRET).encode(),
        "quote-lowercase-hex": quote(SECRET, safe="").lower().encode(),
        "json": json.dumps(SECRET)[1:-1].encode(),
        "json-unicode": json.dumps(SECRET, ensure_ascii=False)[1:-1].encode(),
    }


def test_the_encoded_forms_really_differ() -> None:
    assert len(set(forms().values())) == len(forms())


@pytest.mark.parametrize("form", sorted(forms()))
def test_each_form_is_masked_whole(form: str) -> None:
    text = b"token=" + forms()[form] + b" done\n"
    assert Masker([SECRET]).mask(text) == b"token=[MASKED] done\n"


@pytest.mark.parametrize("form", sorted(forms()))
def test_each_form_split_across_two_chunks_at_every_point(form: str) -> None:
    text = b"a " + forms()[form] + b" b"
    masker = Masker([SECRET])
    for cut in range(len(text) + 1):
        assert stream(masker, [text[:cut], text[cut:]]) == b"a [MASKED] b", cut


def test_split_across_three_feeds_at_every_pair_of_points() -> None:
    text = b"<" + RAW + b">"
    masker = Masker([SECRET])
    for first in range(len(text) + 1):
        for second in range(first, len(text) + 1):
            chunks = [text[:first], text[first:second], text[second:]]
            assert stream(masker, chunks) == b"<[MASKED]>", (first, second)


def test_one_byte_at_a_time() -> None:
    text = b"x" + RAW + b"y" + base64.b64encode(RAW) + b"z"
    masker = Masker([SECRET])
    assert stream(masker, [text[i : i + 1] for i in range(len(text))]) == b"x[MASKED]y[MASKED]z"


def test_overlapping_secrets_leave_no_fragment() -> None:
    masker = Masker(["abcdef", "defghi"])
    assert masker.mask(b"[abcdefghi]") == b"[[MASKED]]"
    assert masker.mask(b"abcdef defghi") == b"[MASKED] [MASKED]"


def test_a_secret_that_is_a_prefix_of_another() -> None:
    masker = Masker(["pass1234", "pass1234-and-more"])
    assert masker.mask(b"1 pass1234-and-more 2 pass1234 3") == b"1 [MASKED] 2 [MASKED] 3"
    text = b"pass1234-and-more"
    for cut in range(len(text) + 1):
        assert stream(masker, [text[:cut], text[cut:]]) == b"[MASKED]"


def test_repeated_and_adjacent_occurrences_become_one_mask() -> None:
    assert Masker(["aaaa"]).mask(b"-aaaaaaaaaa-") == b"-[MASKED]-"
    assert Masker(["abcd"]).mask(b"abcdabcd") == b"[MASKED]"


def test_short_values_are_ignored() -> None:
    masker = Masker(["", "a", "no", "yes", "four"])
    assert masker.mask(b"a yes no four") == b"a yes no [MASKED]"


def test_each_line_of_a_multiline_secret_is_masked() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----\n"
    masker = Masker([key])
    assert masker.mask(b"line: MIIEvQIBADANBg\n") == b"line: [MASKED]\n"
    assert masker.mask(key.encode()) == b"[MASKED]"


def test_no_secrets_passes_everything_through_at_once() -> None:
    masker = Masker([])
    assert masker.holds_back == 0
    assert masker.feed(b"hello") == b"hello"
    assert masker.flush() == b""


def test_holds_back_no_more_than_the_longest_form_minus_one() -> None:
    masker = Masker([SECRET])
    text = b"x" * 1000
    emitted = masker.feed(text)
    assert emitted == text[: len(text) - masker.holds_back]
    assert masker.holds_back == max(len(form) for form in forms().values()) - 1
    assert masker.flush() == text[len(emitted) :]


def test_held_back_utf8_comes_out_unchanged() -> None:
    text = "héllo wörld ✓ ".encode() * 3
    masker = Masker(["unrelated-secret"])
    for cut in range(len(text) + 1):
        assert stream(masker, [text[:cut], text[cut:]]) == text


def test_mask_text_for_error_messages() -> None:
    assert Masker([SECRET]).mask_text(f"bad token {SECRET}!") == "bad token [MASKED]!"


# Secrets without upper-case letters or brackets cannot be spelled by "[MASKED]" itself.
_ALPHABET = 'abc/+=% "\\é1\n'
_secrets = st.lists(st.text(_ALPHABET, min_size=4, max_size=10), min_size=1, max_size=3)


def _encode(secret: str, how: int) -> bytes:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), quote(secret, safe="").encode()][how]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secrets=_secrets)
def test_any_chunking_masks_like_the_whole(data: st.DataObject, secrets: list[str]) -> None:
    pieces = data.draw(
        st.lists(
            st.one_of(
                st.binary(max_size=8),
                st.text(_ALPHABET, max_size=8).map(str.encode),
                st.tuples(st.sampled_from(secrets), st.integers(0, 2)).map(lambda p: _encode(*p)),
            ),
            max_size=12,
        )
    )
    whole = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(whole)), max_size=6)))
    chunks = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    masker = Masker(secrets)
    out = stream(masker, chunks)
    assert out == masker.mask(whole)
    for secret in secrets:
        if len(secret) >= 4:
            assert secret.encode() not in out
    assert MASK in out or not any(s.encode() in whole for s in secrets)


# ---- releasing held text (a progress bar or a prompt without a newline shows live) -------


def test_release_lets_a_partial_line_out() -> None:
    masker = Masker([SECRET])
    assert masker.feed(b"done\nprogress 45%") == b"done\n"  # held: no newline yet
    assert masker.release() == b"progress 45%"
    assert masker.feed(b"\rprogress 90%\n") == b"\rprogress 90%\n"
    assert masker.flush() == b""


def test_release_holds_back_a_tail_that_could_start_a_secret() -> None:
    masker = Masker([SECRET])
    masker.feed(b"password: " + RAW[:5])
    assert masker.release() == b"password: "
    assert masker.release() == b""  # still only a possible start: kept
    assert masker.feed(RAW[5:] + b"\n") + masker.flush() == b"[MASKED]\n"


@pytest.mark.parametrize("form", sorted(forms()))
def test_each_form_split_at_a_release_at_every_point_is_masked(form: str) -> None:
    text = b"a " + forms()[form] + b" b"
    masker = Masker([SECRET])
    for cut in range(len(text) + 1):
        released = masker.feed(text[:cut]) + masker.release()
        assert forms()[form] not in released, cut
        assert released + masker.feed(text[cut:]) + masker.flush() == b"a [MASKED] b", cut


def test_release_after_a_masked_run_continues_it_without_a_second_mask() -> None:
    masker = Masker(["abcdef"])
    out = masker.feed(b"x abcdefabc") + masker.release()
    assert out == b"x [MASKED]"
    assert out + masker.feed(b"def y") + masker.flush() == b"x [MASKED] y"


def test_release_with_nothing_held_is_empty() -> None:
    masker = Masker([SECRET])
    assert masker.release() == b""
    assert Masker([]).release() == b""


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secrets=_secrets)
def test_any_chunking_with_releases_masks_like_the_whole(
    data: st.DataObject, secrets: list[str]
) -> None:
    pieces = data.draw(
        st.lists(
            st.one_of(
                st.binary(max_size=8),
                st.text(_ALPHABET, max_size=8).map(str.encode),
                st.tuples(st.sampled_from(secrets), st.integers(0, 2)).map(lambda p: _encode(*p)),
            ),
            max_size=12,
        )
    )
    whole = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(whole)), max_size=6)))
    chunks = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    releases = data.draw(st.lists(st.booleans(), min_size=len(chunks), max_size=len(chunks)))
    masker = Masker(secrets)
    out = b""
    for chunk, release in zip(chunks, releases, strict=True):
        out += masker.feed(chunk)
        if release:
            out += masker.release()
    out += masker.flush()
    assert out == masker.mask(whole)
    for secret in secrets:
        if len(secret) >= 4:
            assert secret.encode() not in out


def _determined(prefix: bytes, raw: bytes, suffix: bytes) -> tuple[int, int]:
    """(first, end) of the Base64 characters of prefix+raw+suffix that depend on raw alone."""
    start = len(prefix)
    first = -(-start * 8 // 6)  # the first character starting at or after raw's first bit
    end = (start + len(raw)) * 8 // 6  # characters ending at or before raw's last bit
    return first, end


@pytest.mark.parametrize("prefix", [b"", b"u:", b"user:", b"ab", b"a"], ids=repr)
@pytest.mark.parametrize("suffix", [b"", b"\n", b"@example.com", b"x"], ids=repr)
@pytest.mark.parametrize("alphabet", ["standard", "urlsafe"])
def test_base64_of_a_longer_text_holding_the_secret_is_masked(
    prefix: bytes, suffix: bytes, alphabet: str
) -> None:
    # HTTP Basic: base64("user:secret"). The secret sits at every alignment of a Base64
    # group; only the characters mixing in a neighbouring byte may stay.
    encode = base64.b64encode if alphabet == "standard" else base64.urlsafe_b64encode
    text = prefix + RAW + suffix
    encoded = encode(text)
    line = b"Authorization: Basic " + encoded + b"\n"
    masked = stream(Masker([SECRET]), [line[:30], line[30:]])
    assert MASK in masked
    first, end = _determined(prefix, RAW, suffix)
    # Every run of 4 characters that only the secret decides is gone from the output.
    for start in range(first, end - 3):
        assert encoded[start : start + 4] not in masked, (start, masked)
    assert masked.startswith(b"Authorization: Basic " + encoded[: max(0, first - 1)])


def test_base64_of_a_longer_text_is_masked_in_the_stored_way_too() -> None:
    masker = Masker(["s3cr3t-token"])
    basic = base64.b64encode(b"deploy:s3cr3t-token").decode()
    shown = masker.mask_text(f"curl -H 'Authorization: Basic {basic}'")
    assert shown == f"curl -H 'Authorization: Basic {basic[:10]}[MASKED]'"
