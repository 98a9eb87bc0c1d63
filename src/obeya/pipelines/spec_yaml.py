"""Reading obeya.yml text as YAML safely, and finding where each value was written.

Positions are 1-based ``(line, col)`` pairs. ruamel.yaml's round-trip loader records
0-based positions on every mapping and sequence (``.lc``); scalars have none of their own,
so their position is asked of the collection that holds them.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

Position = tuple[int, int]
Problem = tuple[Position, str]

MAX_SPEC_BYTES = 256 * 1024
# The format itself nests five levels deep; the cap keeps the recursive composer of
# ruamel.yaml far away from Python's recursion limit on hostile input.
MAX_DEPTH = 32

START: Position = (1, 1)


class Unreadable(Exception):
    """The text is not a YAML document obeya.yml may be read from; carries the one problem."""

    def __init__(self, position: Position, message: str):
        super().__init__(message)
        self.position = position
        self.message = message


def load_document(text: str) -> Any:
    """The single YAML document in ``text``, with positions; raises ``Unreadable``.

    The events are looked at before anything is built: anchors and aliases are refused,
    so a "billion laughs" document never expands, and so are explicit tags, keys that
    are lists or mappings, and nesting past ``MAX_DEPTH``. Those are also where
    ruamel.yaml would fail with something other than a ``YAMLError``.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise Unreadable(START, "the file is larger than 256 KiB, the most an obeya.yml may be")
    try:
        _refuse_what_is_not_plain(YAML(typ="rt").parse(text))
        yaml = YAML(typ="rt")
        yaml.Constructor = _AsWrittenConstructor
        return yaml.load(text)
    except YAMLError as error:
        raise _unreadable(error, text) from None


class _AsWrittenConstructor(RoundTripConstructor):
    """Keeps numbers with a fraction and dates as the text written, never as float or date.

    So ``VERSION: 1.10`` stays "1.10", and ``DAY: 2024-02-30`` is text rather than an error.
    """

    def construct_as_written(self, node: ScalarNode) -> Any:
        return self.construct_scalar(node)


for _tag in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"):
    _AsWrittenConstructor.add_constructor(_tag, _AsWrittenConstructor.construct_as_written)


def _refuse_what_is_not_plain(events: Iterable[Event]) -> None:
    # One entry per open collection: [is a mapping, the next node is a key].
    open_collections: list[list[bool]] = []
    for event in events:
        if isinstance(event, NodeEvent):
            _refuse_anchor_or_tag(event)
            parent = open_collections[-1] if open_collections else None
            if parent and parent[0]:
                if parent[1] and isinstance(event, CollectionStartEvent):
                    raise Unreadable(
                        _mark(event.start_mark),
                        "a key must be a plain name, not a list or a mapping",
                    )
                parent[1] = not parent[1]
            if isinstance(event, CollectionStartEvent):
                open_collections.append([isinstance(event, MappingStartEvent), True])
                if len(open_collections) > MAX_DEPTH:
                    raise Unreadable(
                        _mark(event.start_mark),
                        f"the document nests deeper than {MAX_DEPTH} levels",
                    )
        elif isinstance(event, CollectionEndEvent):
            open_collections.pop()


def _refuse_anchor_or_tag(event: NodeEvent) -> None:
    if isinstance(event, AliasEvent) or event.anchor:
        sign = "*" if isinstance(event, AliasEvent) else "&"
        raise Unreadable(
            _mark(event.start_mark),
            f"anchors and aliases ({sign}{event.anchor}) are not allowed in obeya.yml: "
            "write each value out in full",
        )
    tag = getattr(event, "tag", None)
    if tag:
        written = str(tag).replace("tag:yaml.org,2002:", "!!")
        raise Unreadable(
            _mark(event.start_mark),
            f"tags ({written}) are not allowed in obeya.yml: remove it, and quote the value "
            "if it must be a string",
        )


_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*)" with value')


def _unreadable(error: YAMLError, text: str) -> Unreadable:
    if isinstance(error, ReaderError):
        return Unreadable(
            _offset_position(text, int(error.position)),
            f"YAML syntax error: character {_codepoint(error.character)} is not allowed",
        )
    if isinstance(error, MarkedYAMLError):
        problem = (error.problem or error.context or "cannot be read").splitlines()[0]
        duplicate = _DUPLICATE_KEY.match(problem)
        if duplicate:
            problem = f'key "{duplicate.group(1)}" appears twice in the same mapping'
        elif problem.startswith("but ") and error.context:
            problem = f"{error.context.splitlines()[0]}, {problem}"
        if "'\\t'" in problem:
            problem += ": indent with spaces, not tabs"
        mark = error.problem_mark or error.context_mark
        return Unreadable(
            _mark(mark) if mark is not None else START, f"YAML syntax error: {problem}"
        )
    return Unreadable(START, f"YAML syntax error: {str(error).splitlines()[0]}")


def _codepoint(character: object) -> str:
    if isinstance(character, int):
        return f"U+{character:04X}"
    if isinstance(character, str) and len(character) == 1:
        return f"U+{ord(character):04X}"
    return repr(character)


def _mark(mark: Any) -> Position:
    return (int(mark.line) + 1, int(mark.column) + 1)


def _offset_position(text: str, offset: int) -> Position:
    before = text[:offset]
    line = before.count("\n") + 1
    return (line, offset - (before.rfind("\n") + 1) + 1)


def node_position(node: Any, fallback: Position = START) -> Position:
    """Where a mapping or sequence starts; ``fallback`` for anything else."""
    if isinstance(node, CommentedMap | CommentedSeq) and node.lc.line is not None:
        return (node.lc.line + 1, node.lc.col + 1)
    return fallback


def key_position(mapping: CommentedMap, key: Any) -> Position:
    found = mapping.lc.key(key) if mapping.lc.data and key in mapping.lc.data else None
    return (found[0] + 1, found[1] + 1) if found else node_position(mapping)


def value_position(mapping: CommentedMap, key: Any) -> Position:
    """Where the value of ``key`` starts; an empty value is placed at its key."""
    if mapping.get(key) is None or not (mapping.lc.data and key in mapping.lc.data):
        return key_position(mapping, key)
    found = mapping.lc.value(key)
    return (found[0] + 1, found[1] + 1)


def item_position(sequence: CommentedSeq, index: int) -> Position:
    if sequence.lc.data and index in sequence.lc.data:
        found = sequence.lc.item(index)
        return (found[0] + 1, found[1] + 1)
    return node_position(sequence)


def kind(value: object) -> str:
    """What YAML made of a value, as a user would say it: "a list", "an integer"."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, tuple):
        return "a list"
    return "a tagged value"


def shown(value: object, limit: int = 40) -> str:
    """A value quoted for a message, cut short when long."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f'"{text}"' if isinstance(value, str) else text
