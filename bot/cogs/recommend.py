"""/recommend and /similar, their page buttons, and the error handler every command uses."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers import Page, footer_text, paginate, shorten
from bot.service import (
    Answer,
    BadInput,
    Busy,
    RecommendService,
    ReplyError,
    Requester,
    Source,
    Upload,
    describe_input,
    failed_entry,
)
from bot.spotify import PlaylistForbidden, PlaylistNotFound, SpotifyError
from bot.storage import RequestKind, StorageError
from recommender.links import LinkError
from recommender.playlist_io import PlaylistFileError

if TYPE_CHECKING:
    from bot.bot import HarmonYa

log = logging.getLogger(__name__)

MAX_RECOMMEND = 50
MAX_SIMILAR = 25
PAGE_TIMEOUT = 600.0
APOLOGY = "Sorry, something went wrong on my side. The bot's admin can find the details in its log."
CONTENT_LIMIT = 2000
SAVE_FAILED = "Sorry, I could not save that just now; please try again later."
UPLOAD_HINT = " Use the `tracks` or `file` option of /recommend for that."
EXPECTED = (ReplyError, SpotifyError, LinkError, PlaylistFileError)


def reply_for(error: Exception) -> str | None:
    """The member's reply for an expected failure; None for anything else (a bug)."""
    if isinstance(error, PlaylistForbidden | PlaylistNotFound):
        return str(error) + UPLOAD_HINT
    if isinstance(error, EXPECTED):
        return _sentence(str(error))
    if isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
        return _sentence(str(error))
    return None


def _sentence(text: str) -> str:
    text = text.strip() or "That did not work."
    if text.split()[0].isalpha():  # a plain word; a file name or link is shown as given
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class Pager(discord.ui.View):
    """Page buttons over one answer and two menus to mark its tracks; only the asker uses them.

    The menus list the tracks of the page showing. A mark is stored for the member, and a
    disliked track is left out of every later answer they get.
    """

    def __init__(self, pages: list[Page], owner_id: int, service: RecommendService) -> None:
        super().__init__(timeout=PAGE_TIMEOUT)
        self.pages = pages
        self.owner_id = owner_id
        self.service = service
        self.index = 0
        self.message: discord.WebhookMessage | None = None
        self._names = {track_id: label for page in pages for track_id, label in page.tracks}
        if len(pages) == 1:
            self.remove_item(self.previous)
            self.remove_item(self.next)
        self._update_items()

    @property
    def is_empty(self) -> bool:
        return not self.children

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the member who asked can turn these pages or mark these tracks.", ephemeral=True
        )
        return False

    async def on_timeout(self) -> None:
        if self.message is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.message.edit(view=None)

    @discord.ui.button(label="Previous", emoji="◀️", custom_id="harmonya:page:previous", row=0)
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[Pager]
    ) -> None:
        await self._show(interaction, self.index - 1)

    @discord.ui.button(label="Next", emoji="▶️", custom_id="harmonya:page:next", row=0)
    async def next(
        self, interaction: discord.Interaction, button: discord.ui.Button[Pager]
    ) -> None:
        await self._show(interaction, self.index + 1)

    @discord.ui.select(placeholder="I like these…", custom_id="harmonya:mark:like", row=1)
    async def like(
        self, interaction: discord.Interaction, select: discord.ui.Select[Pager]
    ) -> None:
        await self._mark(interaction, select.values, liked=True)

    @discord.ui.select(placeholder="Not for me…", custom_id="harmonya:mark:dislike", row=2)
    async def dislike(
        self, interaction: discord.Interaction, select: discord.ui.Select[Pager]
    ) -> None:
        await self._mark(interaction, select.values, liked=False)

    async def _show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._update_items()
        await interaction.response.edit_message(embed=self.pages[self.index].embed, view=self)

    async def _mark(self, interaction: discord.Interaction, values: list[str], liked: bool) -> None:
        track_ids = [track_id for track_id in values if track_id in self._names]
        # Re-sending the view clears the member's choice, so the same menu can be used again.
        await interaction.response.edit_message(view=self)
        try:
            for track_id in track_ids:
                await self.service.run_io(
                    self.service.history.set_feedback, self.owner_id, track_id, liked
                )
        except StorageError as error:
            log.error("feedback of member %d not stored: %s", self.owner_id, error)
            message = SAVE_FAILED
        except Exception:
            log.exception("feedback of member %d not stored", self.owner_id)
            message = SAVE_FAILED
        else:
            message = marked_text([self._names[track_id] for track_id in track_ids], liked)
        await interaction.followup.send(message, ephemeral=True)

    def _update_items(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index == len(self.pages) - 1
        tracks = self.pages[self.index].tracks
        menus: tuple[discord.ui.Select[Pager], ...] = (self.like, self.dislike)
        for menu in menus:
            menu.options = [discord.SelectOption(label=label, value=t) for t, label in tracks]
            menu.max_values = max(1, len(tracks))
            if not tracks and menu in self.children:
                self.remove_item(menu)


def marked_text(labels: list[str], liked: bool) -> str:
    """What the member is told once their marks are stored."""
    if not labels:
        return "Nothing to mark on this page."
    names = "\n".join(f"- {discord.utils.escape_markdown(label)}" for label in labels)
    heading = "Noted, you like these:" if liked else "Noted, I won't recommend these to you again:"
    return shorten(f"{heading}\n{names}", CONTENT_LIMIT)


class Recommend(commands.Cog):
    """Recommendations from playlists, track links and uploads, and sound-alikes of a track."""

    def __init__(self, bot: commands.Bot, service: RecommendService) -> None:
        self.bot = bot
        self.service = service
        self._previous_on_error = bot.tree.on_error

    async def cog_load(self) -> None:
        self.bot.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        self.bot.tree.on_error = self._previous_on_error  # type: ignore[method-assign]

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Expected failures get a short private reply; anything else is logged."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        message = reply_for(cause)
        if message is None:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "/%s failed (guild %s, member %s)",
                command,
                interaction.guild_id,
                interaction.user.id,
                exc_info=cause,
            )
            message = APOLOGY
        await _reply_privately(interaction, message)

    async def _answer(self, interaction: discord.Interaction, answer: Answer) -> None:
        footer = footer_text(answer.counts) if answer.counts else None
        reasons = answer.counts is not None
        pages = paginate(
            answer.title, answer.result.items, answer.labels, footer=footer, reasons=reasons
        )
        view = Pager(pages, interaction.user.id, self.service)
        if view.is_empty:
            await interaction.followup.send(embed=pages[0].embed)
            return
        view.message = await interaction.followup.send(embed=pages[0].embed, view=view, wait=True)

    @contextlib.asynccontextmanager
    async def _recording_failures(
        self, interaction: discord.Interaction, kind: RequestKind, text: str
    ) -> AsyncIterator[None]:
        """Store an expected failure in history (what the member is told), then re-raise it.

        A busy bot is not the member's request failing, so it is not stored.
        """
        try:
            yield
        except EXPECTED as error:
            message = reply_for(error)
            if message is not None and not isinstance(error, Busy):
                entry = failed_entry(_requester(interaction), kind, text, message)
                self.service.record_soon(entry)
            raise

    @app_commands.command(name="recommend")
    @app_commands.describe(
        playlist="A Spotify playlist link",
        count="How many tracks to recommend",
        tracks="Spotify track links, separated by spaces (instead of or as well as a playlist)",
        file="A playlist export: CSV, JSON, or a text file of track links",
    )
    async def recommend(
        self,
        interaction: discord.Interaction,
        playlist: str | None = None,
        count: app_commands.Range[int, 1, MAX_RECOMMEND] = 10,
        tracks: str | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        """Get new tracks for a Spotify playlist, track links or an uploaded playlist file."""
        if not (playlist or tracks or file):
            raise BadInput("Give me a playlist link, some track links or a playlist file.")
        given = describe_input(playlist, tracks, file.filename if file else None)
        with self.service.admit(interaction.user.id):
            async with self._recording_failures(interaction, RequestKind.RECOMMEND, given):
                if file is not None and file.size > self.service.limits.max_upload_bytes:
                    raise BadInput("That file is too large for a playlist export.")
                await interaction.response.defer(thinking=True)
                upload = await _download(file) if file is not None else None
                source = Source(playlist=playlist, tracks=tracks, upload=upload)
                answer = await self.service.recommend(_requester(interaction), source, count)
            # Stored first: an answer Discord fails to take still leaves its history row.
            self.service.record_soon(answer.entry)
            await self._answer(interaction, answer)

    @app_commands.command(name="similar")
    @app_commands.describe(
        track="A track name from the suggestions, or a Spotify track link",
        count="How many tracks to show",
    )
    async def similar(
        self,
        interaction: discord.Interaction,
        track: str,
        count: app_commands.Range[int, 1, MAX_SIMILAR] = 10,
    ) -> None:
        """Find tracks that sound like one track."""
        with self.service.admit(interaction.user.id):
            async with self._recording_failures(interaction, RequestKind.SIMILAR, track):
                await interaction.response.defer(thinking=True)
                answer = await self.service.similar(_requester(interaction), track, count)
            # Stored first: an answer Discord fails to take still leaves its history row.
            self.service.record_soon(answer.entry)
            await self._answer(interaction, answer)

    @similar.autocomplete("track")
    async def similar_track(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=label, value=track_id)
            for label, track_id in self.service.suggest(current)
        ]


def _requester(interaction: discord.Interaction) -> Requester:
    return Requester(interaction.user.id, interaction.guild_id, interaction.channel_id)


async def _download(file: discord.Attachment) -> Upload:
    try:
        content = await file.read()
    except discord.HTTPException as error:
        log.warning("could not download attachment %s: %s", file.id, error)
        raise BadInput("I could not download that file; please upload it again.") from None
    return Upload(file.filename, content)


async def _reply_privately(interaction: discord.Interaction, message: str) -> None:
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True)
            return
        # A public "thinking..." message is showing: remove it, so the note stays private.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)
    except discord.HTTPException as error:
        log.warning("could not tell member %s about a failure: %s", interaction.user.id, error)


async def setup(bot: HarmonYa) -> None:
    await bot.add_cog(Recommend(bot, bot.service))
