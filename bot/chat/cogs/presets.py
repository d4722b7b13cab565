"""``/presets``: the preset catalogue, one embed per painting, with thumbnails where on disk.

Presets that were never used are not downloaded just to be listed; their embed has no picture.
Thumbnails are made once per file version and kept (decoding a dozen full-size paintings on every
``/presets`` would be most of the command's time).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from nst_engine.errors import InvalidImage
from nst_engine.imaging import EncodedImage, decode_image, encode_image, make_preview

from ...core import texts
from ..conversation import Conversation, defer, interaction_conversation
from ..replies import InteractionReply

if TYPE_CHECKING:
    from nst_engine.presets import Preset

    from ..client import PaintingClient

log = logging.getLogger(__name__)

#: Discord's limits (10 embeds and 6,000 embed characters a message, titles of 256), the lengths
#: kept of the operator's texts, and a thumbnail small enough to list many.
EMBEDS_PER_MESSAGE = 10
EMBED_CHARACTERS_MAX = 6000
EMBED_TITLE_MAX = 256
PRESET_DESCRIPTION_MAX = 300
PRESET_FOOTER_MAX = 200
MAX_PRESETS_LISTED = 50
PRESET_THUMBNAIL_SIZE = 160
PRESET_THUMBNAIL_BYTES = 200 * 1024


class PresetsCog(commands.Cog):
    """The ``/presets`` command and its thumbnail cache."""

    def __init__(self, bot: PaintingClient) -> None:
        self.bot = bot
        #: /presets thumbnails by (file, modification time).
        self._thumbnail_cache: dict[tuple[str, int], EncodedImage] = {}
        # For servers only, like every command (docs/bot.md, "Direct messages").
        self.presets_command: app_commands.Command[commands.Cog, [], None] = app_commands.guild_only(
            app_commands.Command(
                name="presets", description="List the preset paintings", callback=self._callback()
            )
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.presets_command, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command("presets")

    def _callback(self) -> Callable[[discord.Interaction], Coroutine[object, object, None]]:
        cog = self

        async def presets(interaction: discord.Interaction) -> None:
            await cog.handle_presets(interaction)

        return presets

    async def handle_presets(self, interaction: discord.Interaction) -> None:
        """The catalogue as one embed per painting, with a thumbnail where the image is on disk.

        Presets that were never used are not downloaded just to be listed; their embed has no
        picture. Discord allows ten embeds and 6,000 embed characters a message, so a long
        catalogue takes several; the operator's texts are clipped to Discord's per-field limits.
        """
        reply = InteractionReply(interaction, token_seconds=self.bot.settings.interaction_token_seconds)
        if interaction.guild_id is None:
            await reply.say(texts.DM_TEXT)
            return
        catalog = self.bot.catalog
        if catalog is None or len(catalog) == 0:
            await reply.say(texts.NO_PRESETS)
            return
        await defer(interaction, ephemeral=True)
        conversation = interaction_conversation(
            interaction, token_seconds=self.bot.settings.interaction_token_seconds
        )
        entries = list(catalog)[:MAX_PRESETS_LISTED]
        thumbnails = await asyncio.get_running_loop().run_in_executor(None, self._preset_thumbnails, entries)
        page: list[tuple[discord.Embed, discord.File | None]] = []
        for preset in entries:
            embed = discord.Embed(
                title=preset.title[:EMBED_TITLE_MAX],
                description=texts.preset_byline(preset.artist, preset.year)[:PRESET_DESCRIPTION_MAX],
            )
            embed.add_field(name=texts.PRESET_USE_IT_WITH, value=texts.preset_command(preset.name))
            embed.set_footer(text=preset.licence[:PRESET_FOOTER_MAX])
            file = None
            thumbnail = thumbnails.get(preset.name)
            if thumbnail is not None:
                name = f"preset-{preset.name}.{thumbnail.extension}"
                embed.set_thumbnail(url=f"attachment://{name}")
                file = discord.File(io.BytesIO(thumbnail.data), filename=name)
            if (
                len(page) == EMBEDS_PER_MESSAGE
                or sum(len(e) for e, _ in page) + len(embed) > EMBED_CHARACTERS_MAX
            ):
                await self._send_presets_page(conversation, page)
                page = []
            page.append((embed, file))
        await self._send_presets_page(conversation, page)

    @staticmethod
    async def _send_presets_page(
        conversation: Conversation, page: list[tuple[discord.Embed, discord.File | None]]
    ) -> None:
        embeds = [embed for embed, _ in page]
        files = [file for _, file in page if file is not None]
        await conversation.send(embeds=embeds, files=files, ephemeral=True)

    def _preset_thumbnails(self, presets: list[Preset]) -> dict[str, EncodedImage]:
        """Small encoded copies of the presets already on disk (runs in a worker thread).

        Each is made once per file version and kept: decoding a dozen full-size paintings on
        every /presets would be most of the command's time.
        """
        resolver = self.bot.resolver
        thumbnails: dict[str, EncodedImage] = {}
        if resolver is None:
            return thumbnails
        for preset in presets:
            path = resolver.cached_path(preset.name)
            if path is None:
                continue
            key = (str(path), path.stat().st_mtime_ns)
            thumbnail = self._thumbnail_cache.get(key)
            if thumbnail is None:
                try:
                    image = make_preview(decode_image(path), PRESET_THUMBNAIL_SIZE)
                except InvalidImage as error:  # a damaged cache file: list the preset without a picture
                    log.warning("no thumbnail for preset %s: %s", preset.name, error)
                    continue
                try:
                    thumbnail = encode_image(image, max_bytes=PRESET_THUMBNAIL_BYTES)
                except ValueError as error:  # no encoding fits the thumbnail's byte budget
                    log.warning("no thumbnail for preset %s: %s", preset.name, error)
                    continue
                self._thumbnail_cache[key] = thumbnail
            thumbnails[preset.name] = thumbnail
        return thumbnails
