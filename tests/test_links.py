from __future__ import annotations

import pytest

from recommender.links import (
    LinkError,
    ShortLinkError,
    is_short_link,
    parse_playlist_ref,
    parse_track_ref,
    track_uri,
)

TRACK = "4uLU6hMCjMI75M1A2tKUQC"
PLAYLIST = "37i9dQZF1DXcBWIGoYBM5M"
OTHER = "0VjIjW4GlUZAMYd2vXMi3b"


@pytest.mark.parametrize(
    "text",
    [
        f"spotify:track:{TRACK}",
        f"Spotify:Track:{TRACK}",
        f"https://open.spotify.com/track/{TRACK}",
        f"http://open.spotify.com/track/{TRACK}",
        f"open.spotify.com/track/{TRACK}",
        f"www.open.spotify.com/track/{TRACK}",
        f"https://www.open.spotify.com/track/{TRACK}",
        f"https://open.spotify.com/track/{TRACK}?si=1a2b3c4d5e6f4a7b",
        f"https://open.spotify.com/track/{TRACK}?si=abc&context=spotify%3Aplaylist%3A{PLAYLIST}",
        f"https://open.spotify.com/track/{TRACK}#section",
        f"https://open.spotify.com/track/{TRACK}/",
        f"https://open.spotify.com/track/{TRACK}/?si=abc",
        f"https://open.spotify.com/intl-de/track/{TRACK}",
        f"https://open.spotify.com/intl-pt-BR/track/{TRACK}?si=x",
        f"https://open.spotify.com/intl-es-419/track/{TRACK}",
        f"https://open.spotify.com/intl-zh-Hant-TW/track/{TRACK}",
        f"https://open.spotify.com/embed/track/{TRACK}",
        f"https://open.spotify.com/embed/track/{TRACK}?utm_source=generator&theme=0",
        f"https://open.spotify.com/intl-fr/embed/track/{TRACK}",
        f"https://OPEN.SPOTIFY.COM/track/{TRACK}",
        f"https://open.spotify.com:443/track/{TRACK}",
        f"https://play.spotify.com/track/{TRACK}",
        f"<https://open.spotify.com/track/{TRACK}?si=abc>",
        f"  <https://open.spotify.com/track/{TRACK}>  ",
        f"< open.spotify.com/track/{TRACK} >",
        f"\n\thttps://open.spotify.com/track/{TRACK}\n",
        TRACK,
        f"  {TRACK}  ",
        f"<{TRACK}>",
    ],
)
def test_parse_track_ref_accepts(text: str) -> None:
    assert parse_track_ref(text) == TRACK


def test_parse_track_ref_keeps_the_id_case() -> None:
    assert parse_track_ref("https://open.spotify.com/track/abcdefghijklmnopqrstuV") == (
        "abcdefghijklmnopqrstuV"
    )


@pytest.mark.parametrize(
    ("text", "message", "kind"),
    [
        (f"https://open.spotify.com/album/{OTHER}", "that is a Spotify album link", "album"),
        (f"https://open.spotify.com/artist/{OTHER}", "that is a Spotify artist link", "artist"),
        (f"spotify:artist:{OTHER}", "that is a Spotify artist link", "artist"),
        (
            f"https://open.spotify.com/playlist/{PLAYLIST}?si=x",
            "that is a Spotify playlist link",
            "playlist",
        ),
        (f"spotify:playlist:{PLAYLIST}", "that is a Spotify playlist link", "playlist"),
        (
            f"spotify:user:some.one:playlist:{PLAYLIST}",
            "that is a Spotify playlist link",
            "playlist",
        ),
        (f"https://open.spotify.com/episode/{OTHER}", "that is a Spotify episode link", "episode"),
        (f"spotify:episode:{OTHER}", "that is a Spotify episode link", "episode"),
        (f"https://open.spotify.com/show/{OTHER}", "that is a Spotify show link", "show"),
        ("https://open.spotify.com/user/someone", "that is a Spotify user link", "user"),
        (
            f"https://open.spotify.com/intl-de/album/{OTHER}?si=1",
            "that is a Spotify album link",
            "album",
        ),
        (f"https://open.spotify.com/embed/album/{OTHER}", "that is a Spotify album link", "album"),
    ],
)
def test_parse_track_ref_names_the_wrong_kind(text: str, message: str, kind: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_track_ref(text)

    assert str(caught.value) == f"{message}, not a track link"
    assert caught.value.kind == kind


INVALID_TRACK_ID = "that is not a valid Spotify track id: ids are 22 letters and digits"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no Spotify track link was given"),
        ("   ", "no Spotify track link was given"),
        ("<>", "no Spotify track link was given"),
        (f"https://www.youtube.com/watch?v={TRACK}", "that is not a Spotify link"),
        (
            f"https://open.spotify.com/track/{TRACK}?si=x https://open.spotify.com/track/{TRACK}",
            "there is more after the link: give one link at a time",
        ),
        (
            f"spotify:track:{TRACK} spotify:track:{TRACK}",
            "there is more after the link: give one link at a time",
        ),
        ("never gonna give you up", "that is not a Spotify link"),
        (
            f"https://open.spotify.com/track/{TRACK}?si=x\u200bhttps://open.spotify.com/track/{TRACK}",
            "there is more after the link: give one link at a time",
        ),
        (f"https://open.spotify.com.evil.example/track/{TRACK}", "that is not a Spotify link"),
        (f"https://spotify.com/track/{TRACK}", "that is not a Spotify link"),
        (f"ftp://open.spotify.com/track/{TRACK}", "that is not a Spotify link"),
        ("never gonna give you up", "that is not a Spotify link"),
        (f"https://open.spotify.com/track/{TRACK[:-1]}", INVALID_TRACK_ID),
        (f"https://open.spotify.com/track/{TRACK}X", INVALID_TRACK_ID),
        (f"https://open.spotify.com/track/{TRACK[:-1]}-", INVALID_TRACK_ID),
        (f"https://open.spotify.com/track/{TRACK}/extra", INVALID_TRACK_ID),
        (f"spotify:track:{TRACK[:-2]}", INVALID_TRACK_ID),
        (f"spotify:track:{TRACK[:-1]}_", INVALID_TRACK_ID),
        (TRACK[:-1], INVALID_TRACK_ID),
        (TRACK + "A", INVALID_TRACK_ID),
        ("4uLU6hMCjMI75M1A2tKUQ_", INVALID_TRACK_ID),
        ("https://open.spotify.com/", "that Spotify link does not point to a track or a playlist"),
        (
            f"https://open.spotify.com/search/{TRACK}",
            "that Spotify link does not point to a track or a playlist",
        ),
        ("spotify:track", "that Spotify URI does not point to a track or a playlist"),
        ("spotify:local:Artist:Album:Title:215", "that is a local file, not a Spotify track"),
        (
            "https://open.spotify.com/local/Artist/Album/Title/215",
            "that is a local file, not a Spotify track",
        ),
    ],
)
def test_parse_track_ref_rejects(text: str, message: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_track_ref(text)

    assert str(caught.value) == message


def test_link_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a Spotify link"):
        parse_track_ref("https://example.com/")


def test_track_uri() -> None:
    assert track_uri(TRACK) == f"spotify:track:{TRACK}"
    assert parse_track_ref(track_uri(TRACK)) == TRACK


def test_track_uri_rejects_a_malformed_id() -> None:
    with pytest.raises(LinkError, match="not a valid Spotify track id"):
        track_uri(f"spotify:track:{TRACK}")


@pytest.mark.parametrize(
    "text",
    [
        f"https://open.spotify.com/playlist/{PLAYLIST}",
        f"https://open.spotify.com/playlist/{PLAYLIST}?si=5f0a1b2c3d4e4f5a&pi=a-AbCdEfGhIjKl",
        f"open.spotify.com/playlist/{PLAYLIST}?si=x",
        f"www.open.spotify.com/playlist/{PLAYLIST}/",
        f"<https://open.spotify.com/playlist/{PLAYLIST}?si=x>",
        f"https://open.spotify.com/intl-ja/playlist/{PLAYLIST}",
        f"https://open.spotify.com/intl-pt-BR/playlist/{PLAYLIST}?si=x",
        f"https://open.spotify.com/intl-es-419/playlist/{PLAYLIST}",
        f"https://open.spotify.com/embed/playlist/{PLAYLIST}",
        f"https://open.spotify.com/user/spotify/playlist/{PLAYLIST}",
        f"https://open.spotify.com/user/some.one_99/playlist/{PLAYLIST}?si=x",
        f"spotify:playlist:{PLAYLIST}",
        f"spotify:user:spotify:playlist:{PLAYLIST}",
        f"spotify:user:some.one:playlist:{PLAYLIST}",
        f"spotify:user:some_one.2:playlist:{PLAYLIST}",
        PLAYLIST,
        f"  {PLAYLIST}\n",
    ],
)
def test_parse_playlist_ref_accepts(text: str) -> None:
    assert parse_playlist_ref(text) == PLAYLIST


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"https://open.spotify.com/track/{TRACK}",
            "that is a Spotify track link, not a playlist link",
        ),
        (f"spotify:track:{TRACK}", "that is a Spotify track link, not a playlist link"),
        (
            f"https://open.spotify.com/album/{OTHER}",
            "that is a Spotify album link, not a playlist link",
        ),
        (
            "https://open.spotify.com/user/someone",
            "that is a Spotify user link, not a playlist link",
        ),
        ("", "that is not a playlist link"),
        ("https://example.com/playlist/" + PLAYLIST, "that is not a playlist link"),
        (f"https://open.spotify.com/playlist/{PLAYLIST[:-1]}", "that is not a playlist link"),
        (f"spotify:playlist:{PLAYLIST}!", "that is not a playlist link"),
        (f"spotify:user::playlist:{PLAYLIST}", "that is not a playlist link"),
        ("spotify:user:someone:collection", "that is not a playlist link"),
        ("spotify:local:a:b:c:1", "that is not a playlist link"),
        ("playlist", "that is not a playlist link"),
    ],
)
def test_parse_playlist_ref_rejects(text: str, message: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_playlist_ref(text)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("https://spotify.link/AbCdEf12345", "https://spotify.link/AbCdEf12345"),
        ("spotify.link/AbCdEf12345", "https://spotify.link/AbCdEf12345"),
        ("<https://spotify.link/AbCdEf12345>", "https://spotify.link/AbCdEf12345"),
        ("https://spotify.link/AbCdEf12345?si=x", "https://spotify.link/AbCdEf12345"),
        ("https://spotify.app.link/xYz987", "https://spotify.app.link/xYz987"),
    ],
)
def test_short_links_raise_with_the_url_to_resolve(text: str, url: str) -> None:
    assert is_short_link(text)
    for parse in (parse_track_ref, parse_playlist_ref):
        with pytest.raises(ShortLinkError) as caught:
            parse(text)
        assert caught.value.url == url
        assert isinstance(caught.value, LinkError)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://spotify.link/",
        f"https://open.spotify.com/track/{TRACK}",
        TRACK,
        "spotify.links/x",
    ],
)
def test_is_short_link_is_false_for_everything_else(text: str) -> None:
    assert not is_short_link(text)
