"""Secret masking for job output, applied to the byte stream as it is produced.

A `Masker` replaces every occurrence of a secret value, and of the encoded forms a script
is likely to print it in, with `[MASKED]`. It works on a stream: `feed()` returns what is
safe to emit now and holds back just enough of the tail (the longest form minus one byte,
or the unfinished line) to catch a secret split across two writes or two chunks;
`release()` lets go of held text that cannot be the start of a secret (so a progress bar
or a prompt without a newline shows while the job waits); `flush()` ends the stream.

What counts as masked, exactly: every occurrence of every form is found, overlapping ones
included, and each maximal run of bytes covered by one or more occurrences becomes a
single `[MASKED]`. So overlapping secrets, or one secret that is a prefix of another,
leave no fragment behind, and streaming a text in any chunking gives the same bytes as
masking it whole.

Forms masked for each secret (and, for a multi-line secret, for each of its lines):

- the value itself (UTF-8);
- its Base64, standard and URL-safe, with and without `=` padding, also of the value
  followed by a newline (what `echo "$SECRET" | base64` prints);
- the Base64 of a longer text that contains the value (`user:secret` in an HTTP Basic
  header): the value can start at any of the three byte positions of a Base64 group, so
  for each the characters that depend on the value's bytes alone are masked (the one or
  two characters at each edge that mix in a neighbouring byte are left; they reveal at
  most a few bits). Only when that stretch is at least `MIN_SHIFTED_BASE64` characters
  long: a shorter one occurs by chance in any long Base64 text;
- URL-encoded with `quote` and `quote_plus`, keeping `/` or not, with upper- or
  lower-case hex escapes;
- JSON-escaped, ASCII-only or not, with `/` escaped as `\\/` or not.

Values shorter than `MIN_SECRET_LENGTH` characters are ignored: a one- to three-character
value ("1", "dev", "yes") occurs all over ordinary output, so masking it would wreck the
log, and the pattern of what vanished would reveal the value anyway. Such a value is not
a secret worth the name; the server should refuse to mark it as one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = b"[MASKED]"
MIN_SECRET_LENGTH = 4
MIN_SHIFTED_BASE64 = 6
_URLSAFE = bytes.maketrans(b"+/", b"-_")

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


class Masker:
    """Masks secrets in one stream of job output; `mask()` masks a whole text at once."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[bytes] = set()
        for secret in secrets:
            for value in _values_of(secret):
                forms |= _forms_of(value)
        # Longest first, so the longest form is found at a position before its prefixes.
        self._forms = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        self._hold = max((len(form) for form in self._forms), default=1) - 1
        # No form spans a line break, so a whole line can be judged (and emitted) at once:
        # a live log then shows each line as it is printed, not `_hold` bytes late.
        self._lines_safe = all(b"\n" not in form for form in self._forms)
        self._pending = b""
        self._covered = 0  # leading bytes of _pending covered by an already-seen occurrence
        self._in_mask = False  # the last byte emitted was part of a masked run

    @property
    def holds_back(self) -> int:
        """The most bytes `feed()` keeps back waiting to see whether a secret completes."""
        return self._hold

    def feed(self, chunk: bytes) -> bytes:
        """Take the next chunk of the stream; return the bytes that are safe to emit now."""
        data = self._pending + chunk
        cut = max(0, len(data) - self._hold)
        if self._lines_safe:
            cut = max(cut, data.rfind(b"\n") + 1)
        if cut == 0:
            self._pending = data
            return b""
        out, self._covered, self._in_mask = self._mask_window(
            data, cut, self._covered, self._in_mask
        )
        self._pending = data[cut:]
        return out

    def release(self) -> bytes:
        """Emit held-back text now, except a tail that could still grow into a secret.

        What stays held is the longest tail that is the beginning of some form: a secret
        split across this call and the next chunk is still masked, and whatever is released
        is masked exactly as `mask()` would mask the whole stream. Call it when the consumer
        is about to ship, e.g. every few hundred milliseconds.
        """
        data = self._pending
        cut = len(data) - self._longest_form_start(data)
        if cut == 0:
            return b""
        out, self._covered, self._in_mask = self._mask_window(
            data, cut, self._covered, self._in_mask
        )
        self._pending = data[cut:]
        return out

    def flush(self) -> bytes:
        """End the stream: return everything still held back, masked. The masker is reusable."""
        data = self._pending
        out, _, _ = self._mask_window(data, len(data), self._covered, self._in_mask)
        self._pending, self._covered, self._in_mask = b"", 0, False
        return out

    def mask(self, data: bytes) -> bytes:
        """Mask a whole text in one go, without touching the stream state."""
        out, _, _ = self._mask_window(data, len(data), 0, False)
        return out

    def mask_text(self, text: str) -> str:
        """Mask a str (an error message, say) through its UTF-8 bytes."""
        raw = self.mask(text.encode("utf-8", "surrogateescape"))
        return raw.decode("utf-8", "surrogateescape")

    def _mask_window(
        self, data: bytes, cut: int, covered: int, in_mask: bool
    ) -> tuple[bytes, int, bool]:
        """Mask `data[:cut]`, given that its first `covered` bytes belong to an earlier match.

        Every occurrence starting before `cut` lies wholly inside `data` (the caller keeps
        `len(data) - cut` at the longest form minus one), so coverage of each byte before
        `cut` is final. Returns the output, how many bytes after `cut` are still covered,
        and whether the byte at `cut - 1` was covered.
        """
        if cut == 0:
            return b"", covered, in_mask
        spans = self._occurrences(data, cut)
        if covered:
            spans.append((0, covered))
        if not spans:
            return data[:cut], 0, False
        spans.sort()
        out = bytearray()
        emitted = 0
        run_start, run_end = spans[0]
        for start, end in [*spans[1:], (len(data) + 1, len(data) + 1)]:
            if start <= run_end:  # overlapping or touching: the same masked run
                run_end = max(run_end, end)
                continue
            out += data[emitted:run_start]
            if not (run_start == 0 and in_mask):
                out += MASK
            emitted = min(run_end, cut)
            run_start, run_end = start, end
        out += data[emitted:cut]
        last_end = max(end for _, end in spans)
        return bytes(out), max(0, last_end - cut), last_end >= cut

    def _longest_form_start(self, data: bytes) -> int:
        """The length of the longest tail of `data` that is a proper prefix of a form.

        No occurrence can start before that tail and end past `data`, so everything before
        it is final (an occurrence lying wholly inside `data` is found by `_mask_window`).
        """
        longest = 0
        for form in self._forms:
            for size in range(min(len(form) - 1, len(data)), longest, -1):
                if data.endswith(form[:size]):
                    longest = size
                    break
        return longest

    def _occurrences(self, data: bytes, cut: int) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for form in self._forms:
            limit = min(len(data), cut - 1 + len(form))
            start = data.find(form, 0, limit)
            while start != -1:
                spans.append((start, start + len(form)))
                start = data.find(form, start + 1, limit)
        return spans


def _values_of(secret: str) -> list[str]:
    """The secret, plus each line of a multi-line secret (they get printed one by one)."""
    values = [secret] if len(secret) >= MIN_SECRET_LENGTH else []
    if "\n" in secret:
        lines = (line.strip() for line in secret.splitlines())
        values += [line for line in lines if len(line) >= MIN_SECRET_LENGTH]
    return values


def _shifted_base64(raw: bytes) -> set[bytes]:
    """The Base64 characters fixed by ``raw`` alone, wherever it sits in a longer text.

    ``raw`` is encoded after 0, 1 and 2 filler bytes, once with filler of all zero bits
    and once of all one bits: a character that depends on any bit outside ``raw`` differs
    between the two, so the stretch where they agree is what any text containing ``raw``
    at that alignment shows. Once followed by more bytes, once ending the text (padding).
    """
    forms: set[bytes] = set()
    for shift in range(3):
        low = base64.b64encode(b"\x00" * shift + raw + b"\x00\x00")
        high = base64.b64encode(b"\xff" * shift + raw + b"\xff\xff")
        forms.add(_agreeing(low, high))
        low = base64.b64encode(b"\x00" * shift + raw)
        high = base64.b64encode(b"\xff" * shift + raw)
        ending = _agreeing(low[::-1], high[::-1])[::-1]
        forms |= {ending, ending.rstrip(b"=")}
    kept = {form for form in forms if len(form.rstrip(b"=")) >= MIN_SHIFTED_BASE64}
    return kept | {form.translate(_URLSAFE) for form in kept}


def _agreeing(one: bytes, other: bytes) -> bytes:
    """The longest stretch where ``one`` and ``other`` (of one length) hold the same bytes."""
    best, start = b"", 0
    for index in range(len(one) + 1):
        if index == len(one) or one[index] != other[index]:
            if index - start > len(best):
                best = one[start:index]
            start = index + 1
    return best


def _forms_of(value: str) -> set[bytes]:
    raw = value.encode("utf-8", "surrogateescape")
    forms = {raw}
    for payload in (raw, raw + b"\n"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(payload)
            forms |= {encoded, encoded.rstrip(b"=")}
    forms |= _shifted_base64(raw)
    for escaped in (
        quote(raw, safe=""),
        quote(raw),
        quote_plus(raw, safe=""),
        quote_plus(raw),
    ):
        lower = _PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), escaped)
        forms |= {escaped.encode("ascii"), lower.encode("ascii")}
    for ensure_ascii in (True, False):
        escaped = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
        for variant in (escaped, escaped.replace("/", "\\/")):
            forms.add(variant.encode("utf-8", "surrogateescape"))
    return forms
