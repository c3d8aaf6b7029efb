"""Text from data files and uploads made safe to store, print and save as CSV.

Names come from files anyone can write: a carriage return inside one would end a CSV line
of the saved catalogue, and a lone surrogate (valid in JSON, not in UTF-8) cannot be written
to a file, a terminal or SQLite at all.
"""

from __future__ import annotations

import re

# Zero-width space, non-joiner and joiner, word joiner, byte-order mark: invisible characters
# that a copy and paste leaves between words (a regular-expression character range).
INVISIBLE = "\u200b-\u200d\u2060\ufeff"
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"[\n\u2028\u2029\x85]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Direction overrides, embeddings and isolates can turn the rest of a line around; zero-width
# spaces hide in names. Neither belongs in a title.
_HIDDEN = re.compile("[\u200b\u2060\ufeff\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters (line breaks kept) as spaces, lone surrogates as U+FFFD."""
    return _CONTROL.sub(" ", _SURROGATE.sub("\ufffd", text))


def one_line(text: str) -> str:
    """:func:`printable` on one line, spaces single, hidden characters gone: for names.

    Single spaces, because a name is looked up as typed and typing collapses them.
    """
    return " ".join(_HIDDEN.sub("", _LINE_BREAK.sub(" ", printable(text))).split())
