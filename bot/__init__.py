"""The HarmonYa Discord bot: commands, the Spotify client and history storage."""
