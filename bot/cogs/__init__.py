"""The bot's features, one cog per file; each module ends in ``async def setup(bot)``."""

EXTENSIONS = ("bot.cogs.recommend", "bot.cogs.history", "bot.cogs.admin")
