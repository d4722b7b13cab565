"""Gatys et al.'s losses: content (relu4_2 features), style (Gram matrices) and total variation.

Kept apart from the optimisation loop so the losses can be read, tested and gradient-checked on
their own; the loop in :mod:`nst_engine.engine` only weights and sums them.
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


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations averaged over positions: independent of the image's size.

    The product runs in the features' own precision (bf16 under autocast: a tenth of an
    evaluation saved, with matmul accumulating in fp32 anyway); the result is fp32.
    """
    n, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last):
        # (N, H*W, C) is a free view of channels_last memory; the gradient comes back in the
        # same layout, instead of a copy forward and a slow mixed-layout add backward.
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    else:
        flat = features.reshape(n, c, h * w).transpose(1, 2)
    gram: torch.Tensor = _Gram.apply(flat)
    return gram.float() / (h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error relative to the target's mean energy (size-independent)."""
    return (features.float() - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-8)


def style_loss(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Average over layers of the relative squared Frobenius distance between Grams."""
    total = torch.zeros((), device=next(iter(targets.values())).device)
    for name, target in targets.items():
        gram = gram_matrix(features[name])
        total = total + (gram - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-8)
    return total / len(targets)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Squared total variation of the image in 0-1 units, averaged over pixels."""
    x = image / 255.0
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).mean()
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).mean()
    return dx + dy
