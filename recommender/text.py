"""Text from data files and uploads made safe to store, print and save as CSV.

Names come from files anyone can write: a carriage return inside one would end a CSV line
of the saved catalogue, and a lone surrogate (valid in JSON, not in UTF-8) cannot be written
to a file, a terminal or SQLite at all.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

# Direction marks, embeddings, overrides and isolates: they can turn the rest of a line around.
_DIRECTION = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Characters a copy and paste leaves invisibly between words: zero-width space, non-joiner
# and joiner, the direction characters, word joiner, byte-order mark (a character range for
# regular expressions).
INVISIBLE = f"\u200b-\u200d{_DIRECTION}\u2060\ufeff"
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"[\n\u2028\u2029\x85]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_TURNING = re.compile(f"[{_DIRECTION}]")
# Zero-width spaces hide in names; joiners stay (emoji sequences and some scripts need them).
_HIDDEN = re.compile("[\u200b\u2060\ufeff]")


def printable(text: str) -> str:
    """``text`` with control characters (line breaks kept) as spaces, lone surrogates as
    U+FFFD and no direction characters."""
    return _TURNING.sub("", _CONTROL.sub(" ", _SURROGATE.sub("\ufffd", text)))


def one_line(text: str) -> str:
    """:func:`printable` on one line, spaces single, zero-width spaces gone: for names.

    Single spaces, because a name is looked up as typed and typing collapses them.
    """
    return " ".join(_HIDDEN.sub("", _LINE_BREAK.sub(" ", printable(text))).split())


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all.

    The text goes to a new file of a random name beside ``path`` (created exclusively, so a
    leftover file or symlink of a fixed name is never written through), which then replaces
    ``path``; on failure the new file is removed and ``path`` is as it was.
    """
    path = Path(path)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name[:100]}.", delete=False
    ) as handle:
        temp = Path(handle.name)
        try:
            handle.write(text)
        except BaseException:
            handle.close()
            temp.unlink(missing_ok=True)
            raise
    try:
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
