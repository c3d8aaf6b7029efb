"""``harmonya bot --console``: the bot's commands in a terminal, without Discord.

The same service, recommender and history database as the bot, so an admin can try a model
before inviting the bot anywhere. Every request is made as one console member.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bot.answers import TRACK_URL, footer_text, reason_text, shorten
from bot.cogs.recommend import APOLOGY, EXPECTED, MAX_RECOMMEND, MAX_SIMILAR, reply_for
from bot.service import (
    Answer,
    BadInput,
    RecommendService,
    Requester,
    Source,
    Upload,
    failed_entry,
)
from bot.storage import RequestKind, RequestStatus, StoredRequest, upgrade_database
from recommender.links import LinkError, parse_track_ref

log = logging.getLogger(__name__)

# Discord ids are large snowflakes, so this one is never a real member's.
CONSOLE_MEMBER_ID = 0
HISTORY_SHOWN = 5
CONSOLE = Requester(CONSOLE_MEMBER_ID)
HELP = """\
/recommend <playlist link | track links | path to a playlist file> [count=N]
/similar <track link or name> [count=N]
/history    your latest requests
/help       this list
/quit       stop (so does end of input)"""


class Console:
    """Reads commands from ``stdin`` and prints the bot's answers to ``stdout``."""

    def __init__(self, service: RecommendService, stdin: TextIO, stdout: TextIO) -> None:
        self.service = service
        self.stdin = stdin
        self.stdout = stdout

    async def run(self) -> None:
        """Answer one command a line until /quit or the end of input."""
        self.say("HarmonYa console: type /help for the commands.")
        while True:
            line = await asyncio.to_thread(self.stdin.readline)
            if not line or line.strip() in ("/quit", "/exit"):
                return
            if line.strip():
                await self.handle(line.strip())

    async def handle(self, line: str) -> None:
        command, _, rest = line.partition(" ")
        if command == "/help":
            self.say(HELP)
        elif command == "/history":
            await self.history()
        elif command in ("/recommend", "/similar"):
            await self.request(RequestKind(command[1:]), rest.strip())
        else:
            self.say("Unknown command; type /help for the list.")

    async def request(self, kind: RequestKind, text: str) -> None:
        given = text
        try:
            words, count = _split_count(
                text, MAX_RECOMMEND if kind is RequestKind.RECOMMEND else MAX_SIMILAR
            )
            if kind is RequestKind.RECOMMEND:
                source = _source(words)
                given = source.describe()
                answer = await self.service.recommend(CONSOLE, source, count)
            else:
                given = " ".join(words)
                if not given:
                    raise BadInput("Give me a track link or name.")
                answer = await self.service.similar(CONSOLE, given, count)
        except EXPECTED as error:
            message = reply_for(error) or APOLOGY
            self.say(message)
            await self.service.record(failed_entry(CONSOLE, kind, given, message))
            return
        except Exception:
            log.exception("/%s failed in the console", kind.value)
            self.say(APOLOGY)
            return
        self.say(answer_text(answer))
        await self.service.record(answer.entry)

    async def history(self) -> None:
        requests = await self.service.run_io(
            self.service.history.history, CONSOLE_MEMBER_ID, None, HISTORY_SHOWN
        )
        if not requests:
            self.say("You have no requests yet. Try /recommend or /similar!")
            return
        self.say("\n".join(_request_lines(number, r) for number, r in enumerate(requests, 1)))

    def say(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)


def answer_text(answer: Answer) -> str:
    """An answer as plain text: the title, numbered tracks with links, and the counts."""
    lines = [answer.title]
    for rank, item in enumerate(answer.result.items, start=1):
        name = item.name or f"spotify:track:{item.track_id}"
        artist = f" · {item.artist}" if item.artist else ""
        lines.append(f"{rank}. {name}{artist}  {TRACK_URL.format(item.track_id)}")
        if answer.counts is not None:
            lines.append(f"   {reason_text(item, answer.labels)}")
    if answer.counts is not None:
        lines.append(footer_text(answer.counts))
    return "\n".join(lines)


def _request_lines(number: int, request: StoredRequest) -> str:
    stamp = request.created_at.strftime("%Y-%m-%d %H:%M")
    given = shorten(" ".join(request.input_text.split()), 80)
    lines = [f"{number}. /{request.kind.value} {stamp} UTC · {given}"]
    if request.status is RequestStatus.ERROR:
        lines.append(f"   failed: {request.error}")
    lines += [f"   {TRACK_URL.format(track.track_id)}" for track in request.tracks]
    return "\n".join(lines)


def _split_count(text: str, maximum: int) -> tuple[list[str], int]:
    words = shlex.split(text) if text else []
    count = 10
    for word in list(words):
        if word.startswith("count="):
            words.remove(word)
            value = word.removeprefix("count=")
            if not value.isdigit() or not 1 <= int(value) <= maximum:
                raise BadInput(f"count must be a number from 1 to {maximum}.")
            count = int(value)
    return words, count


def _source(words: Sequence[str]) -> Source:
    """Track links, an existing file's path, and whatever is left as the playlist link."""
    tracks, others, upload = [], [], None
    for word in words:
        if _is_track(word):
            tracks.append(word)
        elif upload is None and Path(word).is_file():
            upload = Upload(Path(word).name, Path(word).read_bytes())
        else:
            others.append(word)
    playlist = " ".join(others) or None
    if not (playlist or tracks or upload):
        raise BadInput("Give me a playlist link, some track links or a playlist file.")
    return Source(playlist=playlist, tracks=" ".join(tracks) or None, upload=upload)


def _is_track(word: str) -> bool:
    try:
        parse_track_ref(word)
    except LinkError:
        return False
    return True


async def run_console(
    service: RecommendService, model_dir: Path, database_url: str, stdin: TextIO, stdout: TextIO
) -> None:
    """Migrate the database, load the model, then answer commands until the input ends."""
    try:
        await service.run_io(upgrade_database, database_url)
        await service.load_model(model_dir)
        await Console(service, stdin, stdout).run()
    finally:
        await asyncio.get_running_loop().run_in_executor(None, service.close)
