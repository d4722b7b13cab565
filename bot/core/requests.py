"""A request: what a user asked to be painted, and the engine parameters it maps to.

A :class:`JobRequest` is stored as its record's ``params`` (:class:`~bot.core.records.JobParams`),
so a re-run or a resumed job reads back exactly what was asked. Its ``kind`` says what sort of job
it is; today every job paints a photo in a style (:attr:`JobKind.PAINT`), and a new kind (an
upscale of a result, an animated picture) is a new member with its own mapping here and its own
messages in the Discord layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nst_engine import ClipParams, StyleParams

    from .records import JobParams
    from .settings import Settings


class JobKind(str, Enum):
    """What a job makes."""

    #: A photo painted in the style of a painting (an uploaded image or a preset).
    PAINT = "paint"
    #: An animation or short video painted frame by frame (nst_engine.stylize_clip); its stored
    #: content is the clip, and its result is posted as an animation.
    ANIMATE = "animate"
    #: A result painted again at a larger size (its request's ``side``), continuing from the
    #: result's picture: the engine paints only the new level, with the photo's detail added back.
    UPSCALE = "upscale"


@dataclass(frozen=True)
class JobRequest:
    """What to paint, as the user chose it; stored as the record's ``params``."""

    strength: str = "normal"
    size: str = "medium"
    preserve_color: bool = False
    seed: int = 0
    preset: str | None = None
    #: An input was marked as a spoiler: the previews and the result are too.
    spoiler: bool = False
    kind: JobKind = JobKind.PAINT
    #: An upscale's longest side in pixels (None: the named ``size`` applies).
    side: int | None = None
    #: The message the result answers: an upscale replies to the result it enlarges.
    reply_to: int | None = None

    def to_dict(self) -> JobParams:
        params: JobParams = {
            "strength": self.strength,
            "size": self.size,
            "preserve_color": self.preserve_color,
            "seed": self.seed,
            "preset": self.preset,
            "spoiler": self.spoiler,
            "kind": self.kind.value,
        }
        if self.side is not None:
            params["side"] = self.side
        if self.reply_to is not None:
            params["reply_to"] = self.reply_to
        return params

    @classmethod
    def from_dict(cls, data: JobParams) -> JobRequest:
        """The request a record keeps; a field an older record lacks keeps its default."""
        fields = dict(data)
        kind = fields.pop("kind", JobKind.PAINT.value)
        return cls(**fields, kind=JobKind(kind))  # type: ignore[arg-type]  # JobParams' keys are fields


def upscale_side(result_side: int, limit: int) -> int | None:
    """The longest side an Upscale of a result ``result_side`` px long paints: twice it, capped at
    ``limit`` (the server's largest upscale); None when the result is already that large."""
    if result_side >= limit:
        return None
    return min(2 * result_side, limit)


def style_params(settings: Settings, request: JobRequest) -> StyleParams:
    """The engine parameters of one request: the settings' base with size and strength applied
    (an upscale's size is its ``side``)."""
    base: StyleParams = settings.base_params()
    size = settings.sizes[request.size] if request.side is None else request.side
    time_limit = base.time_limit
    if request.kind is JobKind.ANIMATE:  # every frame costs a still's later iterations: kept small
        size = min(size, settings.animation_size)
        time_limit = None  # its frames are planned by the clip's own settings
    elif time_limit is not None:  # the limit is a default-size painting's: scaled by the pixels
        default = settings.sizes[settings.default_size]
        time_limit *= max(1.0, (size / default) ** 2)
    return base.replace(
        size=size,
        time_limit=time_limit,
        style_strength=base.style_strength * settings.strength_steps[request.strength],
        preserve_color=request.preserve_color,
        seed=request.seed,
    )


def clip_params(settings: Settings) -> ClipParams:
    """What an animation needs beyond :func:`style_params`: the iterations of its later frames."""
    from nst_engine.clips import ClipParams

    return ClipParams(frame_iterations=settings.animation_frame_iterations)
