"""The Spotify client: real spotipy over real sockets to the fake Spotify on loopback."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from fakes.spotify import (
    CLIENT_ID,
    CLIENT_SECRET,
    REMOVED_ENTRY,
    FakeSpotify,
    episode_entry,
    local_entry,
    running,
    track_entry,
)
from spotipy.cache_handler import MemoryCacheHandler

from bot.spotify import (
    PlaylistForbidden,
    PlaylistNotFound,
    RateLimited,
    SpotifyAuthError,
    SpotifyClient,
    SpotifyEndpoints,
    SpotifyLimits,
    SpotifyUnavailable,
)
from recommender.links import LinkError

PLAYLIST = "PlaylistAAAAAAAAAAAAAA"
SPOTIFY_MADE = "37i9dQZF1DXcBWIGoYBM5M"


def tid(number: int) -> str:
    """A valid 22-character track id that shows its number: ``t0000...0042``."""
    return f"t{number:021d}"


class FakeClock:
    """A monotonic clock the test moves; `sleep` moves it too and records the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> Iterator[FakeSpotify]:
    yield from running()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(fake: FakeSpotify, clock: FakeClock | None = None, **limits: Any) -> SpotifyClient:
    endpoints = SpotifyEndpoints(
        api_url=fake.api_url,
        token_url=fake.token_url,
        short_link_hosts=frozenset({"127.0.0.1"}),
    )
    timing: dict[str, Any] = {"clock": clock, "sleep": clock.sleep} if clock else {}
    return SpotifyClient(
        CLIENT_ID,
        CLIENT_SECRET,
        endpoints=endpoints,
        limits=SpotifyLimits(**{"request_timeout": 2.0, **limits}),
        **timing,
    )


def add_tracks(fake: FakeSpotify, count: int, playlist_id: str = PLAYLIST) -> list[str]:
    ids = [tid(number) for number in range(count)]
    fake.add_playlist(playlist_id, "Many", [track_entry(track_id) for track_id in ids])
    return ids


def test_a_playlist_name_is_read_as_one_printable_line(fake: FakeSpotify) -> None:
    fake.add_playlist(PLAYLIST, "Road\u202etrip\nline 2\u200b  \x1b[31mred", [track_entry(tid(0))])

    read = make_client(fake).read_playlist(f"https://open.spotify.com/playlist/{PLAYLIST}", 50)

    assert read.name == "Roadtrip line 2 [31mred"


def test_reads_every_page_of_a_long_playlist_in_order(fake: FakeSpotify) -> None:
    ids = add_tracks(fake, 2500)

    read = make_client(fake).read_playlist(f"https://open.spotify.com/playlist/{PLAYLIST}", 5000)

    assert read.playlist_id == PLAYLIST
    assert read.name == "Many"
    assert read.track_ids == ids
    assert (read.used, read.total, read.capped, read.skipped) == (2500, 2500, False, {})
    assert fake.items_requests() == 25


def test_cap_stops_reading_and_says_used_n_of_m(fake: FakeSpotify) -> None:
    ids = add_tracks(fake, 2500)

    read = make_client(fake).read_playlist(f"spotify:playlist:{PLAYLIST}", 250)

    assert read.track_ids == ids[:250]
    assert (read.used, read.total, read.capped) == (250, 2500, True)
    assert fake.items_requests() == 3


def test_cap_equal_to_the_playlist_is_not_capped(fake: FakeSpotify) -> None:
    add_tracks(fake, 100)

    read = make_client(fake).read_playlist(PLAYLIST, 100)

    assert (read.used, read.total, read.capped) == (100, 100, False)


@pytest.mark.parametrize("entry_key", ["item", "track", "both"])
def test_entries_may_carry_item_or_track(fake: FakeSpotify, entry_key: Any) -> None:
    fake.entry_key = entry_key
    ids = add_tracks(fake, 150)

    assert make_client(fake).read_playlist(PLAYLIST, 500).track_ids == ids


def test_fake_still_serves_the_older_tracks_path(fake: FakeSpotify) -> None:
    add_tracks(fake, 3)
    token = requests.post(
        fake.token_url,
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    ).json()["access_token"]

    answer = requests.get(
        f"{fake.api_url}playlists/{PLAYLIST}/tracks",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()

    assert [entry["item"]["id"] for entry in answer["items"]] == [tid(0), tid(1), tid(2)]


def test_removed_local_and_episode_items_are_skipped_and_counted(fake: FakeSpotify) -> None:
    entries = [
        track_entry(tid(1)),
        None,
        local_entry("demo.mp3"),
        REMOVED_ENTRY,
        episode_entry("EpisodeAAAAAAAAAAAAAAA"),
        track_entry(tid(2)),
        local_entry("live.flac"),
        track_entry(tid(3)),
    ]
    fake.add_playlist(PLAYLIST, "Mixed", entries)

    read = make_client(fake).read_playlist(PLAYLIST, 500)

    assert read.track_ids == [tid(1), tid(2), tid(3)]
    assert read.skipped == {"null": 2, "local": 2, "episode": 1}
    assert (read.used, read.total) == (3, 8)


def test_skipped_items_do_not_count_against_the_cap(fake: FakeSpotify) -> None:
    entries = [local_entry(str(number)) for number in range(5)] + [
        track_entry(tid(number)) for number in range(5)
    ]
    fake.add_playlist(PLAYLIST, "Locals first", entries)

    read = make_client(fake).read_playlist(PLAYLIST, 3)

    assert read.track_ids == [tid(0), tid(1), tid(2)]
    assert (read.skipped, read.capped) == ({"local": 5}, True)


def test_relinked_track_keeps_the_playlist_id_and_maps_the_copy(fake: FakeSpotify) -> None:
    fake.add_playlist(
        PLAYLIST, "Relinked", [track_entry(tid(9), linked_from=tid(1)), track_entry(tid(2))]
    )

    read = make_client(fake).read_playlist(PLAYLIST, 500)

    assert read.track_ids == [tid(1), tid(2)]
    assert read.alternate_ids == {tid(1): tid(9)}


def test_403_explains_development_mode_and_offers_other_routes(fake: FakeSpotify) -> None:
    add_tracks(fake, 10)
    fake.fail(403)

    with pytest.raises(PlaylistForbidden) as caught:
        make_client(fake).read_playlist(PLAYLIST, 500)

    message = str(caught.value)
    assert "development mode" in message
    assert "track links" in message
    assert "upload" in message


def test_404_says_the_playlist_was_not_found(fake: FakeSpotify) -> None:
    with pytest.raises(PlaylistNotFound, match="could not find that playlist"):
        make_client(fake).read_playlist(PLAYLIST, 500)


def test_404_for_a_spotify_made_playlist_says_so(fake: FakeSpotify) -> None:
    with pytest.raises(PlaylistNotFound, match="made by Spotify") as caught:
        make_client(fake).read_playlist(SPOTIFY_MADE, 500)

    assert caught.value.playlist_id == SPOTIFY_MADE


def test_404_on_a_later_page_names_the_playlist(fake: FakeSpotify) -> None:
    add_tracks(fake, 250)
    fake.fail(404, target="items")

    with pytest.raises(PlaylistNotFound) as caught:
        make_client(fake).read_playlist(PLAYLIST, 500)

    assert caught.value.playlist_id == PLAYLIST


def test_short_retry_after_is_waited_out_once(fake: FakeSpotify, clock: FakeClock) -> None:
    ids = add_tracks(fake, 150)
    fake.fail(429, target="items", retry_after="2")

    read = make_client(fake, clock).read_playlist(PLAYLIST, 500)

    assert read.track_ids == ids
    assert clock.sleeps == [2.0]


def test_a_second_short_429_is_not_waited_again(fake: FakeSpotify, clock: FakeClock) -> None:
    add_tracks(fake, 10)
    fake.fail(429, retry_after="2", times=2)

    with pytest.raises(RateLimited, match="about 1 minute"):
        make_client(fake, clock).read_playlist(PLAYLIST, 500)

    assert clock.sleeps == [2.0]


def test_long_retry_after_fails_fast_and_pauses_later_calls(
    fake: FakeSpotify, clock: FakeClock
) -> None:
    add_tracks(fake, 10)
    fake.fail(429, retry_after="300")
    client = make_client(fake, clock)

    with pytest.raises(RateLimited, match="try again in about 5 minutes"):
        client.read_playlist(PLAYLIST, 500)
    seen = len(fake.api_paths)
    clock.now += 120
    with pytest.raises(RateLimited, match="about 3 minutes"):
        client.read_playlist(PLAYLIST, 500)
    assert len(fake.api_paths) == seen
    assert clock.sleeps == []

    clock.now += 181
    assert client.read_playlist(PLAYLIST, 500).used == 10


def test_429_on_the_token_endpoint_is_a_rate_limit(fake: FakeSpotify, clock: FakeClock) -> None:
    add_tracks(fake, 10)
    fake.fail(429, target="token", retry_after="600")

    with pytest.raises(RateLimited, match="about 10 minutes"):
        make_client(fake, clock).read_playlist(PLAYLIST, 500)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_a_little(
    fake: FakeSpotify, clock: FakeClock, status: int
) -> None:
    ids = add_tracks(fake, 150)
    fake.fail(status, target="items", times=2)

    read = make_client(fake, clock, retries=2, backoff=0.5).read_playlist(PLAYLIST, 500)

    assert read.track_ids == ids
    assert clock.sleeps == [0.5, 1.0]


def test_server_errors_that_persist_become_unavailable(fake: FakeSpotify, clock: FakeClock) -> None:
    add_tracks(fake, 10)
    fake.fail(503, times=10)

    with pytest.raises(SpotifyUnavailable, match="try again in a few minutes"):
        make_client(fake, clock, retries=2).read_playlist(PLAYLIST, 500)

    assert len(fake.api_paths) == 3


def test_token_endpoint_errors_are_retried(fake: FakeSpotify, clock: FakeClock) -> None:
    add_tracks(fake, 10)
    fake.fail(500, target="token")

    assert make_client(fake, clock).read_playlist(PLAYLIST, 500).used == 10
    assert fake.token_calls == 2


def test_slow_answer_times_out_within_the_bound(fake: FakeSpotify) -> None:
    add_tracks(fake, 10)
    fake.slow(5.0, times=10)
    limits: dict[str, Any] = {
        "request_timeout": 0.2,
        "call_budget": 0.6,
        "retries": 5,
        "backoff": 0.05,
    }
    bound = limits["call_budget"] + 2 * limits["request_timeout"]

    started = time.monotonic()
    with pytest.raises(SpotifyUnavailable, match="too long"):
        make_client(fake, **limits).read_playlist(PLAYLIST, 500)

    assert time.monotonic() - started < bound


def test_one_slow_answer_is_retried(fake: FakeSpotify) -> None:
    add_tracks(fake, 10)
    fake.slow(5.0, target="items")

    read = make_client(fake, request_timeout=0.2, backoff=0.01).read_playlist(PLAYLIST, 500)

    assert read.used == 10


def test_spotipy_never_logs_the_token(fake: FakeSpotify, caplog: pytest.LogCaptureFixture) -> None:
    add_tracks(fake, 10)
    caplog.set_level(logging.DEBUG)

    make_client(fake).read_playlist(PLAYLIST, 500)

    assert "token-1" not in caplog.text
    assert CLIENT_SECRET not in caplog.text


def test_unreachable_spotify_is_unavailable(clock: FakeClock) -> None:
    with FakeSpotify() as stopped:
        endpoints = SpotifyEndpoints(api_url=stopped.api_url, token_url=stopped.token_url)
    client = SpotifyClient(
        CLIENT_ID, CLIENT_SECRET, endpoints=endpoints, clock=clock, sleep=clock.sleep
    )

    with pytest.raises(SpotifyUnavailable, match="not reachable"):
        client.read_playlist(PLAYLIST, 500)


def test_token_is_cached_in_memory_not_in_a_file(
    fake: FakeSpotify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    add_tracks(fake, 250)
    client = make_client(fake)

    for _ in range(3):
        client.read_playlist(PLAYLIST, 500)

    assert fake.token_calls == 1
    assert len(fake.api_paths) == 3 * 4
    assert list(tmp_path.iterdir()) == []


def test_threads_share_one_token_and_read_correctly(fake: FakeSpotify) -> None:
    ids = add_tracks(fake, 250)
    client = make_client(fake)

    with ThreadPoolExecutor(max_workers=8) as pool:
        reads = list(pool.map(lambda _: client.read_playlist(PLAYLIST, 500), range(16)))

    assert all(read.track_ids == ids for read in reads)
    assert fake.token_calls == 1


def test_token_is_fetched_again_once_it_expires(fake: FakeSpotify) -> None:
    add_tracks(fake, 10)
    cache = MemoryCacheHandler()
    client = SpotifyClient(
        CLIENT_ID,
        CLIENT_SECRET,
        endpoints=SpotifyEndpoints(api_url=fake.api_url, token_url=fake.token_url),
        cache_handler=cache,
    )
    client.read_playlist(PLAYLIST, 500)
    assert cache.token_info is not None
    cache.token_info["expires_at"] = int(time.time()) - 1

    client.read_playlist(PLAYLIST, 500)

    assert fake.token_calls == 2
    assert cache.token_info["access_token"] == "token-2"


def test_token_spotify_expired_early_is_refreshed_once(fake: FakeSpotify) -> None:
    ids = add_tracks(fake, 150)
    client = make_client(fake)
    client.read_playlist(PLAYLIST, 500)
    fake.expire_tokens()

    assert client.read_playlist(PLAYLIST, 500).track_ids == ids
    assert fake.token_calls == 2


def test_wrong_credentials_are_an_admin_problem(fake: FakeSpotify) -> None:
    add_tracks(fake, 10)
    client = SpotifyClient(
        CLIENT_ID,
        "wrong-secret",
        endpoints=SpotifyEndpoints(api_url=fake.api_url, token_url=fake.token_url),
    )

    with pytest.raises(SpotifyAuthError, match="server admin"):
        client.read_playlist(PLAYLIST, 500)
    assert fake.api_paths == []


def test_text_that_is_not_a_playlist_link_is_a_link_error(fake: FakeSpotify) -> None:
    with pytest.raises(LinkError, match="not a playlist link"):
        make_client(fake).read_playlist("https://example.com/playlist", 500)
    with pytest.raises(LinkError, match="track link, not a playlist link"):
        make_client(fake).read_playlist(f"https://open.spotify.com/track/{tid(1)}", 500)

    assert fake.token_calls == 0


def test_short_link_to_open_spotify_gives_the_playlist(fake: FakeSpotify) -> None:
    fake.redirects["abc"] = fake.short_link("hop")
    fake.redirects["hop"] = f"https://open.spotify.com/playlist/{PLAYLIST}?si=x&pi=y"

    assert make_client(fake).resolve_short_link(fake.short_link("abc")) == PLAYLIST


def test_short_link_to_another_host_is_refused(fake: FakeSpotify) -> None:
    fake.redirects["abc"] = f"https://open.spotify.com.example.net/playlist/{PLAYLIST}"

    with pytest.raises(LinkError, match="does not lead to a Spotify playlist"):
        make_client(fake).resolve_short_link(fake.short_link("abc"))


def test_short_link_to_a_track_is_not_a_playlist(fake: FakeSpotify) -> None:
    fake.redirects["abc"] = f"https://open.spotify.com/track/{tid(1)}"

    with pytest.raises(LinkError, match="not a playlist link"):
        make_client(fake).resolve_short_link(fake.short_link("abc"))


def test_short_link_that_leads_nowhere_is_refused(fake: FakeSpotify) -> None:
    with pytest.raises(LinkError, match="does not lead to a Spotify playlist"):
        make_client(fake).resolve_short_link(fake.short_link("missing"))


def test_short_link_loop_stops(fake: FakeSpotify) -> None:
    fake.redirects["abc"] = fake.short_link("abc")

    with pytest.raises(LinkError, match="too many times"):
        make_client(fake).resolve_short_link(fake.short_link("abc"))


def test_short_link_to_a_host_not_allowed_is_never_fetched(fake: FakeSpotify) -> None:
    client = SpotifyClient(
        CLIENT_ID,
        CLIENT_SECRET,
        endpoints=SpotifyEndpoints(
            api_url=fake.api_url, token_url=fake.token_url, short_link_hosts=frozenset()
        ),
    )

    with pytest.raises(LinkError, match="does not lead to a Spotify playlist"):
        client.read_playlist("https://spotify.link/abcdef", 500)
