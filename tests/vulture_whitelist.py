"""Names the dead-code check (vulture, run by tests/test_codebase.py) must not report.

Only two kinds belong here, each with its reason: names a framework calls or reads (discord.py,
torch, arq, sqlite3), and names read only where vulture does not look (by name, through
dataclasses.asdict or getattr, or by the benchmarks). Code used only by tests is dead code: delete
it instead of listing it here. This file is read by vulture, never run.

Vulture matches names, not classes: ``RerunButton.callback`` marks every attribute called
``callback`` as used. So a generic name (``callback``, ``forward``) is listed only where every
attribute of that name is one a framework calls, and the check cannot see an unused one.
"""

import sqlite3

import av
import discord

import nst_engine
from bot.chat.app import NSTBot
from bot.chat.buttons import CancelButton, DeleteButton, RerunButton
from bot.chat.cogs.admin import AdminCog
from bot.chat.cogs.presets import PresetsCog
from bot.chat.cogs.stylize import StylizeCog
from nst_engine.animation import ClipStats
from nst_engine.engine import Progress, RunStats
from nst_engine.losses import _Gram
from nst_engine.vgg import VGGFeatures, clear_model_cache
from nst_queue.painter import QueuePainter
from nst_queue.worker import make_worker

# discord.py: the intents the bot turns off, and what the client and its command tree call.
discord.Intents.message_content
discord.Intents.members
discord.Intents.presences
NSTBot.setup_hook
StylizeCog.cog_load
StylizeCog.cog_unload
PresetsCog.cog_load
PresetsCog.cog_unload
RerunButton.from_custom_id
RerunButton.callback
CancelButton.from_custom_id
CancelButton.callback
DeleteButton.from_custom_id
DeleteButton.callback
AdminCog.cog_load
AdminCog.cog_unload
discord.ui.Select.callback

# Python calls a module's __getattr__ and __dir__ (PEP 562): nst_engine loads its names on first use.
nst_engine.__getattr__
nst_engine.__dir__

# Found through the nst.painters entry point (pyproject.toml) by nst_engine.cli.installed_painters.
QueuePainter

# sqlite3 reads a connection's row factory: JobStore reads its rows by column name (sqlite3.Row).
sqlite3.Connection.row_factory

# arq reads its Worker's in-progress key lifetime; nst-worker shortens it (a heartbeat renews it).
make_worker().in_progress_timeout_s

# torch calls forward: autograd.Function.apply for _Gram, nn.Module.__call__ for VGGFeatures (the only
# two forward methods in the packages).
_Gram.forward
VGGFeatures.forward

# Read by name: a progress event carries Progress's fields by getattr (nst_queue.protocol), and the
# run statistics reach `nst --stats-json` and the job records through dataclasses.asdict.
Progress.total_loss
RunStats.total_loss
RunStats.style_targets_cached

# Called by benchmarks/gpu_check.py (not scanned), so its timed run loads the model afresh.
clear_model_cache

# PyAV reads the attributes set on its objects: a decoding stream's thread_type (frame threads) and
# an encoding stream's pix_fmt (yuv420p, what phones play).
av.video.stream.VideoStream.thread_type
av.video.stream.VideoStream.pix_fmt

# Read by name: a clip's statistics reach `nst --stats-json` through dataclasses.asdict.
ClipStats.source_frames
ClipStats.first_frame
