"""Conversions between PIL images and the engine's tensors, resizing, and YIQ colour helpers.

Tensors are (1, 3, H, W) float32 RGB in 0-255 pixel units throughout the engine; the VGG wrapper
applies its own preprocessing.
"""

from __future__ import annotations

import torch
from PIL import Image


def image_to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in 0-255."""
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    tensor = data.view(image.height, image.width, 3).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=torch.float32).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor.detach()[0].float().clamp(0, 255).round().to(torch.uint8)
    array = array.permute(1, 2, 0).contiguous().cpu()
    return Image.frombytes("RGB", (array.shape[1], array.shape[0]), array.numpy().tobytes())


def scaled_dimensions(width: int, height: int, longest: int) -> tuple[int, int]:
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: Image.Image, dims: tuple[int, int]) -> Image.Image:
    """A sharp resize (Lanczos), for the photo: its detail is what the content loss keeps."""
    if image.size == dims:
        return image
    return image.resize(dims, Image.Resampling.LANCZOS, reducing_gap=3.0)


def resize_style(image: Image.Image, dims: tuple[int, int]) -> Image.Image:
    """The style image at a level's size, filtered as neural-style scales it (bilinear).

    Gram targets are very sensitive to the resampling filter, far beyond what the eye sees: for
    Starry Night at 256 px, the relu4_1 Gram loss of the same painted result is 8x larger against
    a bilinear-resized painting than against a Lanczos-resized one (relu2_1 15x). The painting's
    statistics that neural-style's look is made of are those of the bilinear (softer) resize;
    optimised against Lanczos targets, results at 512 px stayed 2.1-2.2x off neural-style's
    objective on Starry Night (docs/benchmarks.md).
    """
    if image.size == dims:
        return image
    return image.resize(dims, Image.Resampling.BILINEAR)


# YIQ: luminance (Y) and chroma (I, Q), for colour preservation (Gatys et al. 2016).
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _color_transform(tensor: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(tensor.device), tensor)


def luminance(tensor: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) RGB -> (1, 1, H, W) luminance, in the same units."""
    return _color_transform(tensor, _RGB_TO_YIQ)[:, :1]


def luminance_as_rgb(tensor: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
    """A grey RGB image of ``tensor``'s luminance, optionally matched in mean and spread to
    ``match``'s luminance (so a dark painting's strokes land on a bright photo's tones)."""
    y = luminance(tensor)
    if match is not None:
        ref = luminance(match)
        y = (y - y.mean()) / y.std().clamp_min(1e-5) * ref.std() + ref.mean()
    return y.expand(-1, 3, -1, -1).clamp(0, 255).contiguous()


def with_chroma_of(luma_image: torch.Tensor, colour_source: torch.Tensor) -> torch.Tensor:
    """Keep ``luma_image``'s luminance and ``colour_source``'s chroma (same size)."""
    yiq = _color_transform(colour_source, _RGB_TO_YIQ)
    yiq = torch.cat([luminance(luma_image), yiq[:, 1:]], dim=1)
    return _color_transform(yiq, _YIQ_TO_RGB)
