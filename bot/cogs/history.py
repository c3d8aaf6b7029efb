"""/history and /forget: what a member asked for and was given, and deleting all of it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers import COLOUR, DESCRIPTION_LIMIT, TRACK_URL, shorten
from bot.service import RecommendService, ReplyError
from bot.storage import ForgottenRows, RequestStatus, StorageError, StoredRequest

if TYPE_CHECKING:
    from bot.bot import HarmonYa

log = logging.getLogger(__name__)

DEFAULT_HISTORY = 5
MAX_HISTORY = 10
TRACKS_SHOWN = 3
CONFIRM_TIMEOUT = 60.0
INPUT_LIMIT = 80
LABEL_LIMIT = 60
ERROR_LIMIT = 120
# Room in the description for the note on requests left out.
_NOTE_ROOM = 60


def history_embed(
    requests: Sequence[StoredRequest], label: Callable[[str], str | None]
) -> discord.Embed:
    """The member's requests, newest first, each with its first tracks as links.

    ``label`` gives a track id's display name, or None when the catalogue does not know it.
    Long names show fewer tracks a request; past that, the oldest requests are left out.
    """
    budget = DESCRIPTION_LIMIT - _NOTE_ROOM
    for tracks_shown in range(TRACKS_SHOWN, 0, -1):
        blocks = [
            _request_block(number, request, label, tracks_shown)
            for number, request in enumerate(requests, start=1)
        ]
        if len(_join(blocks)) <= budget:
            break
    shown: list[str] = []
    for block in blocks:
        if len(_join([*shown, block])) > budget:
            break
        shown.append(block)
    if len(shown) < len(blocks):
        shown.append(f"-# …and {len(blocks) - len(shown)} older requests not shown.")
    title = "Your latest request" if len(requests) == 1 else f"Your {len(requests)} latest requests"
    return discord.Embed(title=title, description=_join(shown), colour=COLOUR)


def forgotten_text(rows: ForgottenRows) -> str:
    """What ``/forget`` deleted, in words."""
    if rows.total == 0:
        return "I had nothing stored about you, so there was nothing to delete."
    return (
        f"Done: I deleted {_plural(rows.requests, 'request')}, "
        f"{_plural(rows.tracks, 'recommended track')} and "
        f"{_plural(rows.feedback, 'like or dislike', 'likes and dislikes')} of yours."
    )


def _join(blocks: list[str]) -> str:
    return "\n\n".join(blocks)


def _request_block(
    number: int, request: StoredRequest, label: Callable[[str], str | None], tracks_shown: int
) -> str:
    given = _escape(shorten(request.input_text, INPUT_LIMIT))
    stamp = int(request.created_at.timestamp())
    lines = [f"**{number}.** /{request.kind.value} <t:{stamp}:R> · {given}"]
    for track in request.tracks[:tracks_shown]:
        name = _escape(
            shorten(label(track.track_id) or f"spotify:track:{track.track_id}", LABEL_LIMIT)
        )
        lines.append(f"- [{name}]({TRACK_URL.format(track.track_id)})")
    more = len(request.tracks) - tracks_shown
    if more > 0:
        lines.append(f"-# and {more} more")
    if request.status is RequestStatus.ERROR:
        lines.append(
            f"-# failed: {_escape(shorten(request.error or 'unknown error', ERROR_LIMIT))}"
        )
    elif not request.tracks:
        lines.append("-# no tracks")
    return "\n".join(lines)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one}" if count == 1 else f"{count} {many or one + 's'}"


def _escape(text: str) -> str:
    # Brackets would end a masked link early; newlines would break the list.
    text = discord.utils.escape_markdown(" ".join(text.split()))
    return text.replace("[", "\\[").replace("]", "\\]")


class ForgetConfirm(discord.ui.View):
    """Confirm and Cancel for /forget; only the member who asked can press them."""

    def __init__(self, service: RecommendService, owner: discord.Interaction) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT)
        self.service = service
        self.owner = owner

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner.user.id:
            return True
        await interaction.response.send_message(
            "Only the member who asked can confirm this.", ephemeral=True
        )
        return False

    async def on_timeout(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            await self.owner.edit_original_response(
                content="No answer, so I deleted nothing.", view=None
            )

    async def on_error(
        self,
        interaction: discord.Interaction,
        error: Exception,
        item: discord.ui.Item[ForgetConfirm],
    ) -> None:
        log.error("/forget failed (member %s)", interaction.user.id, exc_info=error)
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(
                content="Sorry, I could not delete your data just now; nothing was changed. "
                "Please try again in a minute.",
                view=None,
            )

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, button: discord.ui.Button[ForgetConfirm]
    ) -> None:
        self.stop()
        # Deleting can wait on a locked database for longer than Discord's 3 s.
        await interaction.response.defer()
        # A history write still on its way would bring the member back after the delete.
        await self.service.settle(forget=interaction.user.id)
        rows = await self.service.run_io(self.service.history.forget, interaction.user.id)
        await interaction.edit_original_response(content=forgotten_text(rows), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, button: discord.ui.Button[ForgetConfirm]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Cancelled: I kept everything.", view=None)


class History(commands.Cog):
    """A member's own request history, and deleting everything stored about them."""

    def __init__(self, bot: commands.Bot, service: RecommendService) -> None:
        self.bot = bot
        self.service = service

    def _label(self, track_id: str) -> str | None:
        recommender = self.service.recommender
        if recommender is None:
            return None
        row = recommender.catalog.index_of(track_id)
        return recommender.catalog.label(row) if row is not None else None

    @app_commands.command(name="history")
    @app_commands.describe(count="How many of your latest requests to show")
    async def history(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 1, MAX_HISTORY] = DEFAULT_HISTORY,
    ) -> None:
        """See your latest requests in this server and the tracks I gave you."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.service.settle()
        try:
            requests = await self.service.run_io(
                self.service.history.history, interaction.user.id, interaction.guild_id, count
            )
        except StorageError as error:
            log.error("history of member %d not read: %s", interaction.user.id, error)
            raise ReplyError(
                "I can't read your history right now; please try again later."
            ) from None
        if not requests:
            await interaction.followup.send(
                "You have no requests here yet. Try /recommend or /similar!", ephemeral=True
            )
            return
        await interaction.followup.send(embed=history_embed(requests, self._label), ephemeral=True)

    @app_commands.command(name="forget")
    async def forget(self, interaction: discord.Interaction) -> None:
        """Delete everything I have stored about you: requests, tracks, likes and dislikes."""
        view = ForgetConfirm(self.service, interaction)
        await interaction.response.send_message(
            "This deletes all your requests, the tracks I gave you and your likes and dislikes, "
            "in every server. It cannot be undone. Go ahead?",
            view=view,
            ephemeral=True,
        )


async def setup(bot: HarmonYa) -> None:
    await bot.add_cog(History(bot, bot.service))
