"""Answers as Discord embeds: numbered, linked tracks in pages that fit Discord's limits.

Pure functions: no network, no state. Discord's limits (developer docs, "Embed Limits"): a
title 256 characters, a description 4,096, a footer 2,048, all text of one embed 6,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import discord

from recommender.hybrid import (
    COLLABORATIVE,
    CONTENT,
    COOCCURRENCE,
    POPULARITY,
    TITLE,
    Recommendation,
)

TRACK_URL = "https://open.spotify.com/track/{}"
PER_PAGE = 10
COLOUR = discord.Colour(0x7B61FF)
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FOOTER_LIMIT = 2048
EMBED_LIMIT = 6000
# Per-line limits keep ten tracks well inside one description whatever the names are.
NAME_LIMIT = 80
ARTIST_LIMIT = 60
REASON_LIMIT = 100
# A select menu option's label (developer docs, "Select Menus").
OPTION_LIMIT = 100
SKIPPED_KINDS = "local files, episodes, removed"
_TOWER_REASONS = {
    COLLABORATIVE: "on playlists like yours",
    CONTENT: "sounds like your tracks",
    POPULARITY: "popular on many playlists",
    TITLE: "on playlists with a name like yours",
    COOCCURRENCE: "on the same playlists as your tracks",
}


@dataclass(frozen=True)
class Counts:
    """What was made of a member's input: ``used`` of ``total`` tracks fed the model.

    ``skipped`` could not be read (local files, episodes, removed tracks, bad lines);
    ``unknown`` were read but the model does not know them; ``repeats`` are tracks given more
    than once; ``capped`` means the playlist cap stopped reading early.
    """

    used: int
    total: int
    skipped: int = 0
    unknown: int = 0
    capped: bool = False
    repeats: int = 0


@dataclass(frozen=True)
class Page:
    """One embed of an answer and the tracks it lists, as (track id, menu label) pairs."""

    embed: discord.Embed
    tracks: tuple[tuple[str, str], ...]


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def footer_text(counts: Counts) -> str:
    repeats = f", {counts.repeats} repeats" if counts.repeats else ""
    text = (
        f"used {counts.used} of {counts.total}{repeats}, skipped {counts.skipped} "
        f"({SKIPPED_KINDS}), unknown {counts.unknown}"
    )
    if counts.capped:
        text += " (stopped at the playlist cap)"
    if counts.used == 0 and counts.unknown:
        text += "; none of your tracks is known to my model, so these are general picks"
    return text


def reason_text(item: Recommendation, labels: dict[str, str]) -> str:
    """Why a track was recommended: the seed behind it, or else the tower that found it."""
    if item.because is not None and item.because in labels:
        return shorten(f"because you have {labels[item.because]}", REASON_LIMIT)
    for source in item.sources:
        if source in _TOWER_REASONS:
            return _TOWER_REASONS[source]
    return "recommended"


def track_line(rank: int, item: Recommendation, reason: str | None) -> str:
    """``1. [Name](https://open.spotify.com/track/<id>) - Artist``, then the reason."""
    name = _escape(shorten(item.name or f"spotify:track:{item.track_id}", NAME_LIMIT))
    line = f"**{rank}.** [{name}]({TRACK_URL.format(item.track_id)})"
    if item.artist:
        line += f" · {_escape(shorten(item.artist, ARTIST_LIMIT))}"
    if reason:
        line += f"\n-# {_escape(reason)}"
    return line


def option_label(rank: int, item: Recommendation) -> str:
    """``1. Name · Artist`` as a select menu shows it: plain text, at most 100 characters."""
    name = " ".join((item.name or f"spotify:track:{item.track_id}").split())
    text = f"{rank}. {shorten(name, NAME_LIMIT)}"
    if item.artist:
        text += f" · {' '.join(item.artist.split())}"
    return shorten(text, OPTION_LIMIT)


def paginate(
    title: str,
    items: Sequence[Recommendation],
    labels: dict[str, str],
    *,
    footer: str | None = None,
    reasons: bool = True,
    per_page: int = PER_PAGE,
) -> list[Page]:
    """Pages of ``per_page`` tracks (fewer when long lines would pass a limit), each with the
    tracks it lists for the menus under it.

    ``labels`` maps seed track ids to display names for the reasons. Always at least one page.
    """
    title = shorten(title, TITLE_LIMIT)
    footer = shorten(footer, FOOTER_LIMIT - 20) if footer else None
    budget = min(DESCRIPTION_LIMIT, EMBED_LIMIT - len(title) - len(footer or "") - 20)
    lines = [
        track_line(rank, item, reason_text(item, labels) if reasons else None)
        for rank, item in enumerate(items, start=1)
    ]
    chunks = _chunk(lines, per_page, budget) or [["Nothing to recommend."]]
    options = [(item.track_id, option_label(rank, item)) for rank, item in enumerate(items, 1)]
    pages = []
    start = 0
    for number, chunk in enumerate(chunks, start=1):
        embed = discord.Embed(title=title, description="\n".join(chunk), colour=COLOUR)
        page = f"page {number} of {len(chunks)}" if len(chunks) > 1 else ""
        text = " · ".join(part for part in (footer, page) if part)
        if text:
            embed.set_footer(text=text)
        pages.append(Page(embed, tuple(options[start : start + len(chunk)])))
        start += len(chunk)
    return pages


def _chunk(lines: list[str], per_page: int, budget: int) -> list[list[str]]:
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for line in lines:
        added = len(line) + (1 if current else 0)
        if current and (len(current) == per_page or size + added > budget):
            chunks.append(current)
            current, added, size = [], len(line), 0
        current.append(line)
        size += added
    if current:
        chunks.append(current)
    return chunks


def _escape(text: str) -> str:
    # Square brackets would end the masked link early; newlines would break the numbering.
    text = discord.utils.escape_markdown(" ".join(text.split()))
    return text.replace("[", "\\[").replace("]", "\\]")
