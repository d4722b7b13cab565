"""Gatys et al.'s losses: content (relu4_2 features), style (Gram matrices) and total variation.

Kept apart from the optimisation loop so the losses can be read, tested and gradient-checked on
their own; the loop in :mod:`nst_engine.engine` only weights and sums them.

The scaling is neural-style's (jcjohnson/neural-style, the implementation of Gatys et al. most
people have seen), so its weights (content 5, style 100 per layer) mean here what they mean there:

* content: the mean squared error of relu4_2 features;
* style: for each layer, the mean squared error of Gram matrices normalised by C·H·W, summed over
  the layers (each layer weighted equally);
* total variation: neural-style sums squared neighbour differences over the image, which grows
  with the pixel count; here it is their mean, so a TV weight means the same at any size.

All three are means over positions, so the same weights give the same balance, and the same look,
at 256 px and at 1024 px. What they are *not* is normalised by the target's own energy, as this
engine did before: that made relu5_1 (objects, faces) count as much as relu1_1 (colours, fine
texture), so a painting's colours hardly arrived and a strong style copied its faces. In absolute
units the shallow layers, whose Gram entries are largest, dominate, as in Gatys et al.

Absolute losses depend on the scale of the features, i.e. on the network's input preprocessing:
Caffe VGG19 takes 0-255 pixel values, torchvision's ImageNet-normalised input is about 58 times
smaller, and its features (a ReLU network is nearly positively homogeneous) about as much smaller.
``feature_scale`` (see :attr:`nst_engine.vgg.VGGFeatures.feature_scale`) brings features back to
Caffe's scale, which the default weights are set for.
"""

from __future__ import annotations

from typing import Any

import torch


class _Gram(torch.autograd.Function):
    """``flat^T @ flat`` for ``flat`` of shape (N, positions, C), with a one-product backward.

    Autograd's own backward of ``x^T x`` computes two products (one per operand) and adds them;
    the Gram matrix is symmetric in its operands, so one product with the symmetrised gradient
    gives the same result: about 5% of an evaluation at 512 px on a CPU.
    """

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return flat.transpose(1, 2) @ flat

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        flat: torch.Tensor = ctx.saved_tensors[0]
        return flat @ (grad + grad.transpose(1, 2)).to(flat.dtype)


def _at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) values in fp32 for the loss sums; fp64 stays fp64 (gradient checks)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations F·Fᵀ / (C·H·W), neural-style's normalisation.

    Dividing by the positions makes a Gram independent of the image's size (the same texture over
    a larger area has the same Gram); dividing by the channels too keeps the five layers (64 to
    512 channels) on the scale neural-style's per-layer weight of 100 was chosen for. The product
    runs in the features' own precision (bf16 under autocast: a tenth of an evaluation saved, with
    matmul accumulating in fp32 anyway); the result is fp32.
    """
    n, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last):
        # (N, H*W, C) is a free view of channels_last memory; the gradient comes back in the
        # same layout, instead of a copy forward and a slow mixed-layout add backward.
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    else:
        flat = features.reshape(n, c, h * w).transpose(1, 2)
    gram: torch.Tensor = _Gram.apply(flat)
    return _at_least_fp32(gram) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor, feature_scale: float = 1.0) -> torch.Tensor:
    """Mean squared error of the features, in Caffe VGG19's units (see the module's docstring).

    A mean over positions, so independent of the image's size.
    """
    return (_at_least_fp32(features) - target).pow(2).mean() * feature_scale**2


def style_loss(
    features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], feature_scale: float = 1.0
) -> torch.Tensor:
    """Sum over the layers of the mean squared error between Grams, in Caffe VGG19's units.

    A sum rather than a mean, as in neural-style, whose ``style_weight`` is per layer. Grams are
    quadratic in the features, hence the fourth power of ``feature_scale``.
    """
    per_layer = [(gram_matrix(features[name]) - target).pow(2).mean() for name, target in targets.items()]
    return torch.stack(per_layer).sum() * feature_scale**4


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Squared differences between neighbouring pixels, in 0-255 units, averaged over the image.

    neural-style sums them (its energy is 0.5e-3 x the sum at its default weight), which makes the
    weight's effect grow with the pixel count; the mean is the same for the same picture at any
    size. At 512x384 px neural-style's default equals a weight of about 300 on this mean.
    """
    x = _at_least_fp32(image)
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).mean()
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).mean()
    return dx + dy
