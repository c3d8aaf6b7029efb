"""Spotify track and playlist references: links, URIs and bare ids, checked offline.

Everything here is pure string work; `spotify.link` short links need an HTTP redirect to be read,
so they raise `ShortLinkError` and the caller (the bot) resolves them and parses the result.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from recommender.text import INVISIBLE

log = logging.getLogger(__name__)

ID_LENGTH = 22
_ID_RE = re.compile(r"[0-9A-Za-z]{22}")
# A reference with no separators at all is meant as a bare id, even when it is a malformed one.
_BARE_RE = re.compile(r"[\w-]+")
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_BETWEEN_LINKS = re.compile(f"[\\s,;<>{INVISIBLE}]+")
# "/intl-de/", "/intl-pt-BR/", "/intl-es-419/": the web player's locale prefix.
_LOCALE_RE = re.compile(r"intl-[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_HOSTS = frozenset({"open.spotify.com", "play.spotify.com"})
_SHORT_HOSTS = frozenset({"spotify.link", "spotify.app.link"})
# Things a Spotify link or URI can point to; named in the message when it is the wrong one.
_KINDS = frozenset(
    {"track", "album", "artist", "playlist", "episode", "show", "audiobook", "chapter", "user"}
)


class LinkError(ValueError):
    """A reference that is not what was asked for; `str(error)` is one sentence for a user.

    `kind` says what the reference turned out to be ("album", "episode", "local", ...) when that
    is known, so callers can count skipped entries without parsing the message.
    """

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class ShortLinkError(LinkError):
    """A `spotify.link` short link: resolve `url` over HTTP, then parse what it redirects to."""

    def __init__(self, url: str) -> None:
        super().__init__(
            "that is a Spotify short link, which has to be opened before it can be read",
            kind="short",
        )
        self.url = url


@dataclass(frozen=True)
class _Ref:
    kind: str
    item_id: str


def parse_track_ref(text: str) -> str:
    """Return the 22-character track id in a track link, `spotify:track:` URI or bare id.

    >>> parse_track_ref("<https://open.spotify.com/intl-de/track/4uLU6hMCjMI75M1A2tKUQC?si=x>")
    '4uLU6hMCjMI75M1A2tKUQC'
    """
    ref = _parse_ref(text, wanted="track")
    if ref.kind == "local":
        raise LinkError("that is a local file, not a Spotify track", kind="local")
    if ref.kind != "track":
        raise LinkError(f"that is a Spotify {ref.kind} link, not a track link", kind=ref.kind)
    return _check_id(ref.item_id, "track")


def track_uri(track_id: str) -> str:
    """Return `spotify:track:<id>` for a 22-character track id."""
    return f"spotify:track:{_check_id(track_id, 'track')}"


def parse_playlist_ref(text: str) -> str:
    """Return the 22-character playlist id in a playlist link, URI or bare id."""
    try:
        ref = _parse_ref(text, wanted="playlist")
    except ShortLinkError:
        raise
    except LinkError as exc:
        raise LinkError("that is not a playlist link", kind=exc.kind) from exc
    if ref.kind == "playlist" and _ID_RE.fullmatch(ref.item_id):
        return ref.item_id
    if ref.kind in _KINDS and ref.kind != "playlist":
        raise LinkError(f"that is a Spotify {ref.kind} link, not a playlist link", kind=ref.kind)
    raise LinkError("that is not a playlist link", kind="local" if ref.kind == "local" else None)


def is_short_link(text: str) -> bool:
    """Tell whether `text` is a `spotify.link/<code>` short link (resolving it needs the web)."""
    parts = _split_url(_clean(text))
    return parts is not None and parts[0] in _SHORT_HOSTS and bool(parts[1])


def split_links(text: str) -> list[str]:
    """The pieces of ``text`` that may each be one link or id.

    Pasted lists separate links by spaces of any kind, commas, semicolons, invisible
    characters (a zero-width space) or the angle brackets Discord puts around a link; none of
    these is ever part of a link.
    """
    return [piece for piece in _BETWEEN_LINKS.split(text) if piece]


def _clean(text: str) -> str:
    # An invisible character between two pasted links must part them, not join them.
    text = _INVISIBLE.sub(" ", text).strip()
    # Discord shows `<url>` without an embed, so people paste links wrapped in angle brackets.
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text


def _parse_ref(text: str, *, wanted: str) -> _Ref:
    cleaned = _clean(text)
    if not cleaned:
        raise LinkError(f"no Spotify {wanted} link was given")
    if _BARE_RE.fullmatch(cleaned):
        return _Ref(wanted, cleaned)
    words = cleaned.split()
    if len(words) > 1 and cleaned[:14].lower() != "spotify:local:":
        # Two links pasted with a space between them would otherwise pass as one, the second
        # hidden in the first one's query string.
        first = words[0]
        parts = _split_url(first)
        if first[:8].lower() == "spotify:" or (parts and parts[0] in (*_HOSTS, *_SHORT_HOSTS)):
            raise LinkError("there is more after the link: give one link at a time")
        raise LinkError("that is not a Spotify link")
    if cleaned[:8].lower() == "spotify:":
        return _parse_uri(cleaned)
    if is_short_link(cleaned):
        host, code = _split_url(cleaned) or ("", "")
        raise ShortLinkError(f"https://{host}/{code}")
    return _parse_url(cleaned)


def _parse_uri(uri: str) -> _Ref:
    parts = uri.split(":")
    kind = parts[1].lower() if len(parts) > 1 else ""
    if kind == "local":
        return _Ref("local", "")
    if kind == "user" and len(parts) == 5 and parts[3].lower() == "playlist" and parts[2]:
        return _Ref("playlist", parts[4])
    if kind == "user" and len(parts) == 3 and parts[2]:
        return _Ref("user", parts[2])
    if len(parts) == 3 and kind in _KINDS:
        return _Ref(kind, parts[2])
    raise LinkError("that Spotify URI does not point to a track or a playlist")


def _split_url(text: str) -> tuple[str, str] | None:
    """Return (host without `www.`, path) of an http(s) URL, the scheme being optional."""
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    return host.removeprefix("www."), parts.path.strip("/")


def _parse_url(text: str) -> _Ref:
    parts = _split_url(text)
    if parts is None or parts[0] not in _HOSTS:
        raise LinkError("that is not a Spotify link")
    segments = [unquote(segment) for segment in parts[1].split("/") if segment]
    if segments and _LOCALE_RE.fullmatch(segments[0]):
        segments = segments[1:]
    if segments and segments[0].lower() == "embed":
        segments = segments[1:]
    # Ids are case-sensitive; the words around them are not.
    return _ref_from_segments([segment.lower() for segment in segments[:-1]] + segments[-1:])


def _ref_from_segments(segments: list[str]) -> _Ref:
    if segments[:1] == ["local"]:
        return _Ref("local", "")
    if len(segments) == 4 and segments[0] == "user" and segments[2] == "playlist":
        return _Ref("playlist", segments[3])
    if len(segments) >= 2 and segments[0] == "user":
        return _Ref("user", segments[1])
    if len(segments) >= 2 and segments[0] in _KINDS:
        # Extra segments ("/artist/<id>/discography") only matter when the kind is wrong anyway.
        return _Ref(segments[0], segments[1] if len(segments) == 2 else "")
    raise LinkError("that Spotify link does not point to a track or a playlist")


def _check_id(item_id: str, kind: str) -> str:
    if not _ID_RE.fullmatch(item_id):
        raise LinkError(
            f"that is not a valid Spotify {kind} id: ids are {ID_LENGTH} letters and digits"
        )
    return item_id
