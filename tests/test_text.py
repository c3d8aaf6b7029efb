"""Text made safe to store and print, and files written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.text import one_line, printable, write_text_atomically


def test_a_leftover_temporary_symlink_is_never_written_through(tmp_path: Path) -> None:
    data = tmp_path / "mpd.slice.0-999.json"
    data.write_text("the data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "truth.json.tmp").symlink_to(data)  # a fixed temporary name would follow this

    write_text_atomically(out / "truth.json", "new")

    assert (out / "truth.json").read_text() == "new"
    assert data.read_text() == "the data"
    assert sorted(p.name for p in out.iterdir()) == ["truth.json", "truth.json.tmp"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("old")

    with pytest.raises(UnicodeEncodeError):
        write_text_atomically(path, "half \ud800")

    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_printable_keeps_line_breaks_and_drops_what_terminals_misread() -> None:
    assert printable("a\x1b[2Jb\nc\ud800\u202ed") == "a [2Jb\nc\ufffdd"
    assert one_line(" a\r\n b\u200b  c ") == "a b c"
