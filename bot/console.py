"""``harmonya bot --console``: the bot's commands in a terminal, without Discord.

The same service, recommender and history database as the bot, so an admin can try a model
before inviting the bot anywhere. Every request is made as one console member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

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
from bot.storage import (
    RequestKind,
    RequestStatus,
    StorageError,
    StoredRequest,
    upgrade_database,
)
from recommender.links import (
    LinkError,
    ShortLinkError,
    parse_playlist_ref,
    parse_track_ref,
    split_links,
)
from recommender.playlist_io import os_reason
from recommender.text import INVISIBLE, printable

log = logging.getLogger(__name__)
INPUT_THREAD = "harmonya-console-input"

# Discord ids are large snowflakes, so this one is never a real member's.
CONSOLE_MEMBER_ID = 0
HISTORY_SHOWN = 5
CONSOLE = Requester(CONSOLE_MEMBER_ID)
# Seconds the console waits for history writes in progress when it stops.
DRAIN_TIMEOUT = 10.0
# Longer lines are refused (and skipped to their end) rather than read into memory whole.
MAX_LINE = 10_000
# Lines read ahead of the command being answered.
_READ_AHEAD = 16
_ODD_SPACE = re.compile(f"[^\\S\n]|[{INVISIBLE}]")
HISTORY_FAILED = "I can't read your history right now; please try again later."
HELP = """\
/recommend <playlist link | track links | path to a playlist file> [count=N]
/similar <track link or name> [count=N]
(Discord's forms work too: /recommend tracks:<links> count:5, /similar track:<name>)
/history    your latest requests
/help       this list
/quit       stop (so does end of input)"""


class Console:
    """Reads commands from ``stdin`` and prints the bot's answers to ``stdout``."""

    def __init__(self, service: RecommendService, stdin: TextIO, stdout: TextIO) -> None:
        self.service = service
        self.stdin = stdin
        self.stdout = stdout
        # Set by Ctrl-C or SIGTERM: the command being answered finishes, then the console ends.
        self.stopping = False
        self.busy = False

    async def run(self) -> None:
        """Answer one command a line until /quit or the end of input."""
        self.say("HarmonYa console: type /help for the commands.")
        async for line in self._lines():
            if line is None:
                self.say(f"That line is longer than {MAX_LINE:,} characters; I skipped it.")
                continue
            if line.strip().lower() in ("/quit", "/exit"):
                return
            if not line.strip():
                continue
            self.busy = True
            try:
                await self.handle(line.strip())
            except Exception:
                log.exception("console command failed: %s", shorten(line.strip(), 80))
                self.say(APOLOGY)
            finally:
                self.busy = False
            if self.stopping:
                return

    async def handle(self, line: str) -> None:
        command, _, rest = line.partition(" ")
        command = command.lower()
        if command == "/help":
            self.say(HELP)
        elif command == "/history":
            await self.history()
        elif command in ("/recommend", "/similar"):
            await self.request(RequestKind(command[1:]), rest.strip())
        else:
            self.say("Unknown command; type /help for the list.")

    async def request(self, kind: RequestKind, text: str) -> None:
        # Any space (a pasted non-breaking one) or invisible character parts words as a space.
        text = _ODD_SPACE.sub(" ", text)
        given = text
        try:
            recommend = kind is RequestKind.RECOMMEND
            words, count = _split_count(
                text, MAX_RECOMMEND if recommend else MAX_SIMILAR, name=not recommend
            )
            if kind is RequestKind.RECOMMEND:
                source = await self.service.run_io(
                    _source, words, self.service.limits.max_upload_bytes
                )
                given = source.describe()
                answer = await self.service.recommend(CONSOLE, source, count)
            else:
                given = _unquoted(" ".join(words))
                if not given:
                    raise BadInput("Give me a track link or name.")
                answer = await self.service.similar(CONSOLE, given, count)
        except EXPECTED as error:
            message = reply_for(error) or APOLOGY
            self.say(message)
            self.service.record_soon(failed_entry(CONSOLE, kind, given, message))
            return
        except Exception:
            log.exception("/%s failed in the console", kind.value)
            self.say(APOLOGY)
            return
        self.service.record_soon(answer.entry)  # first: a failed print loses no row
        self.say(answer_text(answer))

    async def history(self) -> None:
        await self.service.settle()
        try:
            requests = await self.service.run_io(
                self.service.history.history, CONSOLE_MEMBER_ID, None, HISTORY_SHOWN
            )
        except StorageError as error:
            log.error("console history not read: %s", error)
            self.say(HISTORY_FAILED)
            return
        if not requests:
            self.say("You have no requests yet. Try /recommend or /similar!")
            return
        self.say("\n".join(_request_lines(number, r) for number, r in enumerate(requests, 1)))

    async def _lines(self) -> AsyncIterator[str | None]:
        """The input's lines, None for one past ``MAX_LINE``."""
        fd = _terminal_fd(self.stdin)
        lines = self._terminal_lines(fd) if fd is not None else self._thread_lines()
        async for line in lines:
            yield line

    async def _terminal_lines(self, fd: int) -> AsyncIterator[str | None]:
        """A terminal's lines, read when the loop sees input waiting.

        No thread is left blocked in a read of the terminal: one would hold the process
        back at exit, after /quit or Ctrl-C, until the member pressed Enter.
        """
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as error:
                log.error("console input ended: %s", error)
                chunk = b""
            if not chunk:
                loop.remove_reader(fd)
            chunks.put_nowait(chunk)

        was_blocking = os.get_blocking(fd)
        os.set_blocking(fd, False)
        loop.add_reader(fd, readable)
        pending, skipping = b"", False
        try:
            while chunk := await chunks.get():
                pending += chunk
                while b"\n" in pending:
                    line, _, pending = pending.partition(b"\n")
                    if skipping:  # the end of a line already reported as too long
                        skipping = False
                    elif len(line) > MAX_LINE:
                        yield None
                    else:
                        yield line.decode("utf-8", errors="replace") + "\n"
                if len(pending) > MAX_LINE:
                    if not skipping:
                        yield None
                    pending, skipping = b"", True
            if pending and not skipping:
                yield pending.decode("utf-8", errors="replace")
        finally:
            loop.remove_reader(fd)
            os.set_blocking(fd, was_blocking)

    async def _thread_lines(self) -> AsyncIterator[str | None]:
        """The lines of a pipe or file (or a test's text stream), read by a daemon thread.

        A blocking read in the default executor would keep ``asyncio.run`` waiting after
        Ctrl-C until the next line came; a daemon thread is simply left behind.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | EOFError | None] = asyncio.Queue()
        room = threading.Semaphore(_READ_AHEAD)

        def read() -> None:
            try:
                while line := self.stdin.readline(MAX_LINE + 1):
                    if len(line) > MAX_LINE and not line.endswith("\n"):
                        while (rest := self.stdin.readline(MAX_LINE)) and rest[-1] != "\n":
                            pass
                    room.acquire()
                    loop.call_soon_threadsafe(
                        queue.put_nowait, line if len(line) <= MAX_LINE else None
                    )
                room.acquire()
                loop.call_soon_threadsafe(queue.put_nowait, EOFError())
            except RuntimeError:  # the loop has closed: nobody is listening any more
                return
            except (OSError, ValueError) as error:  # closed input
                log.error("console input ended: %s", error)
                loop.call_soon_threadsafe(queue.put_nowait, EOFError())

        threading.Thread(target=read, name=INPUT_THREAD, daemon=True).start()
        while not isinstance(item := await queue.get(), EOFError):
            room.release()
            yield item

    def say(self, text: str) -> None:
        # Echoed input may hold terminal escapes or what the terminal cannot encode.
        print(printable(text), file=self.stdout, flush=True)


def _terminal_fd(stream: TextIO) -> int | None:
    """The file descriptor of ``stream`` when it is a terminal, else None."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if os.isatty(fd) else None


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


def _split_count(text: str, maximum: int, *, name: bool = False) -> tuple[list[str], int]:
    """Words and count=. A ``name`` (a /similar search) is split at spaces only: its quotes,
    apostrophes and backslashes belong to the title (I Love Rock 'n' Roll)."""
    try:
        words = text.split() if name else shlex.split(text)
    except ValueError:
        raise BadInput("A quote is not closed; put a matching \" or ' after the text.") from None
    words = [w for w in (_discord_option(word) for word in _join_count(words)) if w]
    counts = [word for word in words if word.startswith("count=")]
    if len(counts) > 1:
        raise BadInput("Give count= only once.")
    count = 10
    for word in counts:
        words.remove(word)
        value = word.removeprefix("count=")
        # isdigit() alone accepts "²", which int() refuses.
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= maximum:
            raise BadInput(f"count must be a number from 1 to {maximum}.")
        count = int(value)
    return words, count


def _unquoted(name: str) -> str:
    """A name typed inside one pair of quotes, without them."""
    if len(name) > 1 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1].strip()
    return name


def _join_count(words: list[str]) -> list[str]:
    """``count: 5`` (a space after the name, as Discord shows it) is ``count:5``."""
    joined: list[str] = []
    for word in words:
        if joined and joined[-1].lower() in ("count:", "count="):
            joined[-1] += word
        else:
            joined.append(word)
    return joined


def _discord_option(word: str) -> str:
    """Discord's ``tracks:<links>``, ``track:<name>``, ``playlist:``, ``file:`` and
    ``count:N`` typed in the console: the option's name is dropped (``count:N`` -> ``count=N``)."""
    for name in ("playlist:", "tracks:", "track:", "file:"):
        if word.lower().startswith(name):
            return word[len(name) :]
    if word.lower().startswith("count:"):
        return "count=" + word[len("count:") :]
    return word


def _source(words: Sequence[str], max_bytes: int) -> Source:
    """Track links, one playlist link and one existing file's path; anything else is refused.

    Blocking (it reads the file): run it off the event loop.
    """
    tracks: list[str] = []
    playlists: list[str] = []
    upload = None
    for word in words:
        if upload is None and not _is_track(word) and _is_file(word):
            upload = _read_upload(Path(word), max_bytes)
            continue
        for piece in split_links(word):  # the command line's and the bot's rule
            if _is_track(piece):
                tracks.append(piece)
            else:
                playlists.append(_playlist_link(piece))
    if len(playlists) > 1:
        raise BadInput("Give me one playlist link at a time.")
    if not (playlists or tracks or upload):
        raise BadInput("Give me a playlist link, some track links or a playlist file.")
    playlist = playlists[0] if playlists else None
    return Source(playlist=playlist, tracks=" ".join(tracks) or None, upload=upload)


def _playlist_link(word: str) -> str:
    """``word`` if it is a playlist link; otherwise BadInput saying what it is instead."""
    shown = f'"{shorten(word, 60)}"'
    try:
        parse_playlist_ref(word)
    except ShortLinkError:
        return word
    except LinkError as error:
        if error.kind not in (None, "local", "short"):
            raise BadInput(
                f"That is a Spotify {error.kind} link, not a track or playlist link: {shown}"
            ) from None
        if "://" not in word and not word.lower().startswith("spotify:") and _looks_like_path(word):
            raise BadInput(_not_a_playlist_file(word, shown)) from None
        raise BadInput(f"That is not a track or playlist link, nor a file: {shown}") from None
    return word


def _not_a_playlist_file(word: str, shown: str) -> str:
    try:
        path = Path(word)
        if path.is_dir():
            return f"That is a folder, not a playlist file: {shown}"
        if path.exists():  # a second file: the first one was taken
            return f"Give me one playlist file at a time: {shown}"
    except (OSError, ValueError):
        pass
    return f"There is no such file: {shown}"


def _looks_like_path(word: str) -> bool:
    return "/" in word or "\\" in word or Path(word).suffix.lower() in (".csv", ".json", ".txt")


def _is_file(word: str) -> bool:
    try:
        return Path(word).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _read_upload(path: Path, max_bytes: int) -> Upload:
    try:
        if path.stat().st_size > max_bytes:
            raise BadInput(f"{path.name} is too large for a playlist export.")
        with path.open("rb") as handle:
            return Upload(path.name, handle.read(max_bytes + 1))
    except OSError as error:
        raise BadInput(f"{path.name} could not be read: {os_reason(error)}.") from None


def _is_track(word: str) -> bool:
    try:
        parse_track_ref(word)
    except LinkError:
        return False
    return True


async def run_console(
    service: RecommendService, model_dir: Path, database_url: str, stdin: TextIO, stdout: TextIO
) -> None:
    """Migrate the database, load the model, then answer commands until the input ends.

    Ctrl-C, SIGTERM and SIGHUP stop it as they stop the bot, at any point: during start-up,
    start-up finishes and no console follows; at the prompt, it ends at once; during an
    answer, the answer finishes and is stored first, unless the signal comes again. Once the
    console has ended, more signals change nothing: history writes in flight get up to
    ``DRAIN_TIMEOUT`` seconds, then the database is closed.
    """
    loop = asyncio.get_running_loop()
    console = Console(service, stdin, stdout)
    reading: asyncio.Task[None] | None = None

    def stop() -> None:
        if reading is not None and not reading.done():
            if console.stopping or not console.busy:
                reading.cancel()
            else:
                with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                    console.say("Stopping once this answer is done (again to stop now).")
        console.stopping = True

    with _stop_on_signals(loop, stop):
        try:
            await service.run_io(upgrade_database, database_url)
            await service.run_io(service.history.check_writable)
            await service.load_model(model_dir)
            if not console.stopping:
                reading = asyncio.create_task(console.run())
                try:
                    await reading
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if not console.stopping or (current is not None and current.cancelling()):
                        raise
            if console.stopping:
                with contextlib.suppress(OSError):
                    console.say("Stopped.")
            await service.drain(DRAIN_TIMEOUT)
        finally:
            await loop.run_in_executor(None, service.close)


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP call ``stop`` instead of interrupting whatever runs.

    Where the loop cannot take signals (not the main thread, Windows) they behave as before.
    """
    previous: dict[int, Any] = {}
    names = ("SIGINT", "SIGTERM", "SIGHUP")  # no SIGHUP on Windows
    for number in (getattr(signal, name) for name in names if hasattr(signal, name)):
        handler = signal.getsignal(number)
        try:
            loop.add_signal_handler(number, stop)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        previous[number] = handler
    try:
        yield
    finally:
        for restored, handler in previous.items():
            loop.remove_signal_handler(restored)
            if handler is not None:  # None: set outside Python, left as the loop restored it
                signal.signal(restored, handler)
