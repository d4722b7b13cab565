"""Names the dead-code check (vulture, run by tests/test_codebase.py) must not report.

Only two kinds belong here, each with its reason: names a framework calls or reads (discord.py,
torch), and the engine's public library API that the bot itself does not call. Code used only by
tests is dead code: delete it instead of listing it here. This file is read by vulture, never run.
"""

import sqlite3

import discord

from bot.app import NSTBot
from bot.cogs.admin import AdminCog
from bot.cogs.stylize import StylizeCog
from bot.jobs import JobQueue
from bot.views import CancelButton, DeleteButton, RerunButton
from nst_engine.engine import Progress, RunStats
from nst_engine.imaging import EncodedImage
from nst_engine.losses import _Gram
from nst_engine.presets import PresetResolver
from nst_engine.vgg import VGGFeatures, clear_model_cache
from nst_queue.worker import make_worker

# discord.py: the intents the bot turns off, and what the client and its command tree call.
discord.Intents.message_content
discord.Intents.members
discord.Intents.presences
NSTBot.setup_hook
StylizeCog.handle_reaction  # a commands.Cog.listener for on_raw_reaction_add
NSTBot.tree.on_error
StylizeCog.cog_load
StylizeCog.cog_unload
RerunButton.from_custom_id
RerunButton.callback
CancelButton.from_custom_id
CancelButton.callback
DeleteButton.from_custom_id
DeleteButton.callback
AdminCog.cog_load
AdminCog.cog_unload
discord.ui.Select.callback

# sqlite3 reads a connection's row factory: JobStore reads its rows by column name (sqlite3.Row).
sqlite3.Connection.row_factory

# arq reads its Worker's in-progress key lifetime; nst-worker shortens it (a heartbeat renews it).
make_worker().in_progress_timeout_s

# torch: autograd and nn.Module call forward.
_Gram.forward
VGGFeatures.forward

# The engine's library API: run statistics and result fields read by library users and written
# to --stats-json with dataclasses.asdict; helpers for callers that manage their own caches.
Progress.total_loss
RunStats.total_loss
RunStats.style_targets_cached
EncodedImage.format
PresetResolver.cache_path_for
clear_model_cache

# The queue's waiting count, next to its running count (read by the tests and the load benchmark to
# see an idle queue).
JobQueue.waiting
