"""Every sentence the bot says to its users, in one place.

Rules for these texts (CONTRIBUTING.md, "Users see friendly messages"): one plain sentence that
says what to do; never a traceback, an exception name, a server path or a library's raw error.
Constants are fixed sentences; functions fill in the values a sentence needs. The code that
decides *when* to say something (the core's errors, the Discord layer's handlers) imports it from
here; command and option descriptions and button labels stay with their definitions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# ---------------------------------------------------------------------------- refusals (admission)
SHUTTING_DOWN = "The bot is shutting down; try again in a minute."
QUEUE_FULL = "The queue is full right now, try again in a minute."
SERVICE_UNAVAILABLE = "The painting service is unavailable, try again in a minute."
STORAGE_FULL = "I have no room to keep your picture right now; please try again later."


def too_many_jobs(limit: int) -> str:
    noun = "job" if limit == 1 else "jobs"
    return f"You already have {limit} {noun} in progress; wait for it to finish."


def cooling_down(retry_after: float) -> str:
    return f"Please wait {max(1, round(retry_after))} s before asking again."


# ---------------------------------------------------------------------------- failures of a job
CANCELLED = "Cancelled."
SHUTDOWN_TEXT = "The bot is restarting, so your job was stopped; please try again in a minute."
DISK_FULL_TEXT = "My disk is full right now, so I could not keep your picture; please try again later."
DATABASE_BUSY_TEXT = (
    "I am too busy to take this right now (my job list is locked); please try again in a minute."
)
OUT_OF_MEMORY = "The painter ran out of memory; try a smaller size."
UNEXPECTED = "Something went wrong on my side; it has been logged. Please try again later."
PROGRESS_NOT_POSTED = "I could not post your job's progress here, so I stopped it; please try again."
RESULT_TOO_LARGE = (
    "I finished your picture but could not make it small enough to upload here; please try a smaller size."
)
UPLOAD_FAILED = "I finished your picture but could not upload it; please try again."
RESTARTED = "Sorry, the bot restarted while your picture was being painted; please run /stylize again."
#: The old progress message of a job that ended because the bot restarted (no Cancel left on it).
RESTARTED_STOPPED = "Stopped: the bot restarted while this was being painted."
#: Above the progress of a job painted again from its stored inputs after the bot restarted.
PAINTING_AGAIN = "The bot restarted, so I am painting this again from the start."
#: A re-run of a result that was posted but whose record could not be saved (yet).
CANNOT_RERUN_NOW = (
    "I can't re-run this picture right now (I could not finish saving it); please try again later."
)


def unusable_image(reason: str) -> str:
    return f"I can't use that image: {reason}"


def engine_failed(reason: str) -> str:
    return f"That didn't work: {reason}"


def preset_unavailable(preset: str) -> str:
    return (
        f"The preset painting `{preset}` is not available right now; try another preset or "
        "your own style image. The bot's operator can see why in its log."
    )


# ---------------------------------------------------------------------------- a job's messages
PAINTING = "Painting\u2026"
STARTING = "Starting\u2026"


def queued(position: int) -> str:
    """What a waiting user sees: the jobs ahead of theirs (0 or less: it starts now)."""
    if position <= 0:
        return STARTING
    ahead = "1 job" if position == 1 else f"{position} jobs"
    return f"Queued: {ahead} ahead of yours."


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def render_bar(fraction: float, width: int = 20) -> str:
    """A text bar such as ``[██████░░░░]``; ``fraction`` is clamped to 0..1."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "[" + "\u2588" * filled + "\u2591" * (width - filled) + "]"


def render_progress(
    step: int,
    total: int,
    elapsed: float,
    eta: float | None,
    width: int = 20,
    *,
    fraction: float | None = None,
    frame: int = 1,
    frames: int = 1,
) -> str:
    """The progress line users watch: bar, step/total, percent, elapsed and ETA.

    The bar and percent show ``fraction``, the engine's share of the run's estimated time
    (:attr:`nst_engine.Progress.fraction`): iterations at the coarse levels cost a fraction of
    those at full size, so step/total ran ahead and then crawled. Without it, step/total.
    """
    if fraction is None:
        fraction = step / total if total > 0 else 0.0
    frame_text = f" \u00b7 frame {frame} of {frames}" if frames > 1 else ""
    return (
        f"`{render_bar(fraction, width)}` {step}/{total} ({fraction:.0%}){frame_text}"
        f" \u00b7 elapsed {format_duration(elapsed)} \u00b7 ETA {format_duration(eta)}"
    )


def painting_progress(
    step: int,
    total: int,
    elapsed: float,
    eta: float | None,
    *,
    fraction: float | None = None,
    frame: int = 1,
    frames: int = 1,
) -> str:
    line = render_progress(step, total, elapsed, eta, fraction=fraction, frame=frame, frames=frames)
    return f"{PAINTING} {line}"


def animation_plan(frames: int, eta_seconds: float) -> str:
    """The first line of an animation's progress message, from its request to its end."""
    noun = "frame" if frames == 1 else "frames"
    return f"Animation: {frames} {noun} to paint, about {format_duration(eta_seconds)} once it starts."


def animation_shrunk(width: int, height: int) -> str:
    return f"(Made {width}\u00d7{height} to fit this channel's upload limit.)"


def animation_other_format(extension: str) -> str:
    return f"(Posted as {extension.upper()} to fit this channel's upload limit.)"


def done(mention: str) -> str:
    return f"Done, {mention}!"


def finished_in(seconds: float) -> str:
    return f"Finished in {seconds:.1f} s."


def addressed(mention: str, text: str) -> str:
    """``text`` said to one user in a channel everyone reads."""
    return f"{mention} {text}"


# The result's embed.
RESULT_TITLE = "Your painting"


def result_style(preset: str | None) -> str:
    return f"Style: preset `{preset}`" if preset else "Style: your image"


def result_colours(preserve_color: bool) -> str:
    return "kept" if preserve_color else "from the style"


def result_time(seconds: float, device: str, precision: str) -> str:
    return f"{seconds:.1f} s on {device} ({precision})"


RESULT_TITLE_UPSCALED = "Your painting, upscaled"


def result_file(extension: str, width: int, height: int, *, full: tuple[int, int], limit_bytes: int) -> str:
    """How the picture was sent: lossless PNG, or (over the channel's upload limit) a
    high-quality JPEG/WebP, shrunk to ``width`` x ``height`` when even that did not fit ``full``."""
    if extension == "png":
        return "PNG (lossless)"
    kind = "JPEG" if extension == "jpg" else "WebP"
    if limit_bytes >= 1024 * 1024:
        limit = f"{limit_bytes / (1024 * 1024):.0f} MB"
    else:
        limit = f"{limit_bytes // 1024} KB" if limit_bytes >= 1024 else f"{limit_bytes} bytes"
    shrunk = "" if (width, height) == full else f" at {width}\u00d7{height}"
    return f"high-quality {kind}{shrunk}: the lossless PNG is over this channel's {limit} upload limit"


#: An Upscale asked of an animation (the engine continues stills only).
UPSCALE_NOT_FOR_ANIMATIONS = "Animations can't be upscaled; Stronger, Weaker and Re-roll work on them."


def upscale_at_limit(limit: int) -> str:
    """An Upscale of a result already as large as upscales go in this server (``limit`` px)."""
    if limit <= 0:
        return "Upscaling is turned off here."
    return f"This picture is already as large as upscales go here ({limit} px on its longest side)."


def upscale_over_operator(limit: int) -> str:
    """``/nst-admin max-upscale`` above what the bot's operator allows (0: no upscales)."""
    if limit <= 0:
        return "Upscaling is turned off on this bot."
    return f"This bot upscales to at most {limit} px; choose {limit} or less."


def result_footer(reaction_emoji: str, job_id: str) -> str:
    return f"React {reaction_emoji} for stronger \u00b7 job {job_id}"


# ---------------------------------------------------------------------------- requests (/stylize)
DM_TEXT = "I only work in servers: use my commands in a channel of a server I'm in."
STYLE_OR_PRESET = "Give exactly one of `style` (an image) or `preset` (a painting from the menu)."
NO_PRESETS = "No presets are configured."
NO_IMAGE_IN_MESSAGE = "That message has no image."
NOT_YOUR_MENU = "This menu is not yours."
WHICH_PAINTING = "Which painting?"
CHOOSE_A_PAINTING = "Choose a painting"
DOWNLOAD_FAILED = "I could not download it; please try again"


def no_such_preset(name: str, suggestions: Iterable[str]) -> str:
    found = list(suggestions)
    hint = f" Did you mean {', '.join(found)}?" if found else " See /presets."
    return f"There is no preset called `{name[:50]}`.{hint}"


def must_be_one_of(what: str, names: Iterable[str]) -> str:
    return f"{what} must be one of {', '.join(names)}."


def not_this_channel(channels: Iterable[int]) -> str:
    where = ", ".join(f"<#{c}>" for c in channels)
    return f"I don't paint in this channel. In this server, use me in {where}."


def size_not_allowed(largest: str, pixels: int) -> str:
    return f"This server allows sizes up to {largest} ({pixels} px); choose that or a smaller size."


def larger_than(cap_bytes: int) -> str:
    if cap_bytes >= 1024 * 1024:
        return f"it is larger than {cap_bytes / (1024 * 1024):.0f} MiB"
    return f"it is larger than {cap_bytes // 1024} KiB"


def unusable_attachment(what: str, reason: str) -> str:
    """``what``: "photo" or "style image"; ``reason``: why, in words for the user."""
    return f"I can't use that {what}: {reason}"


def attachment_too_large(what: str, cap_bytes: int) -> str:
    return f"{unusable_attachment(what, larger_than(cap_bytes))}."


# ---------------------------------------------------------------------------- re-runs, Cancel, Delete
EXPIRED_TEXT = "This job has expired (its images are no longer kept); run /stylize again."
UNKNOWN_JOB = "I don't know that job any more."
REQUESTER_ONLY_TEXT = "In this server only the person who asked for a picture can re-run it."


def already_rerunning(channel_id: int | None) -> str:
    """A re-run asked for while the same picture is already being painted again (one at a time)."""
    where = "" if channel_id is None else f" in <#{channel_id}>"
    return f"This picture is already being painted again{where}; its progress is there."


def rerun_budget_spent(per_hour: int, retry_after: float) -> str:
    """A member who re-ran others' pictures ``per_hour`` times in the last hour."""
    if per_hour == 0:
        return "Here you can re-run only your own pictures."
    minutes = max(1, math.ceil(retry_after / 60))
    noun = "picture" if per_hour == 1 else "pictures"
    return (
        f"You can re-run {per_hour} {noun} of other people per hour; "
        f"try again in {minutes} min, or re-run your own."
    )


CANCEL_REFUSED_TEXT = "Only the person who asked (or a moderator) can cancel this."
DELETE_REFUSED_TEXT = "Only the person who asked (or a moderator) can delete this."
CANCELLING = "Cancelling\u2026"
ALREADY_FINISHED = "That job has already finished."
DELETE_FAILED = "I could not delete that message; please try again in a minute."
DELETED_BUT_KEPT = (
    "The picture is deleted, but I could not remove my stored copy of its images now; "
    "it will be removed when it expires."
)


def already_at_end(stronger: bool) -> str:
    return f"That is already the {'strongest' if stronger else 'weakest'} setting."


# ---------------------------------------------------------------------------- the conversation
#: What a public "thinking…" message becomes when the answer to it has to be private.
PRIVATE_ANSWER_NOTE = "I've replied to you privately."

# ---------------------------------------------------------------------------- /presets
PRESET_USE_IT_WITH = "Use it with"


def preset_command(name: str) -> str:
    return f"`/stylize preset:{name}`"


def preset_byline(artist: str, year: str | int) -> str:
    return f"{artist}, {year}"


# ---------------------------------------------------------------------------- /nst-admin
NEEDS_MANAGE_SERVER = "Only members with the Manage Server permission can change my settings here."
SAVED = "Saved."


def channel_list_full(limit: int) -> str:
    return f"The list is full ({limit} channels); remove one first."


def cannot_post_note(channel_id: int, missing: Iterable[str]) -> str:
    return f"\nNote: to post pictures in <#{channel_id}> I need {', '.join(missing)} there."


def server_settings(
    *,
    channels: tuple[int, ...],
    largest: str,
    pixels: int,
    requester_only: bool,
    spoilers: bool,
    group: str,
    upscale: int | None = None,
) -> str:
    """A server's settings as a member reads them, with the commands that change them;
    ``upscale``: the largest upscale in px (0: off), None: not shown."""
    where = ", ".join(f"<#{c}>" for c in channels) if channels else "every channel"
    who = "only the person who asked" if requester_only else "anyone"
    upscales = []
    if upscale is not None:
        upscales.append(f"\N{BULLET} Largest upscale: {upscale} px" if upscale else "\N{BULLET} Upscale: off")
    return "\n".join(
        [
            "**Settings for this server**",
            f"\N{BULLET} Channels I paint in: {where}",
            f"\N{BULLET} Largest size: {largest} ({pixels} px)",
            *upscales,
            f"\N{BULLET} Who may re-run someone else's picture: {who}",
            f"\N{BULLET} Results as spoilers: {'on' if spoilers else 'off'}",
            f"Change them with `/{group} channels add|remove|clear`, `/{group} max-size`, "
            f"`/{group} reruns`, `/{group} spoilers`"
            + ("." if upscale is None else f", `/{group} max-upscale`."),
        ]
    )
