"""Optical flow between photo frames, warping along it, and where it can be trusted.

A clip's next frame is painted starting from the previous painting moved the way the photo moved
(Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos", 2016). The flow comes from
OpenCV's DIS (dense inverse search): a classical method, fast on a CPU (a few milliseconds at
256 px), with nothing to download. A learned flow would be more accurate but needs weights.

Conventions: a flow is a float32 array of shape (H, W, 2) holding (dx, dy) in pixels, and
``flow_between(a, b)`` says for each pixel of ``a`` where it went in ``b``: ``a[y, x]`` is near
``b[y + dy, x + dx]``. To bring a picture painted on frame k-1 onto frame k, sample it at
``p + flow_between(frame_k, frame_k-1)(p)`` for each pixel ``p`` of frame k (:func:`warp`).

The flow is wrong where something appears that the previous frame did not show (disocclusion),
and blurred across the edges of moving objects. :func:`reliable_mask` finds both as the paper
does: the forward and backward flows must undo each other, and the flow must not change sharply.
The temporal loss ignores those pixels, so they are painted afresh.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

FlowArray = npt.NDArray[np.float32]
RGBArray = npt.NDArray[np.uint8]

#: Forward-backward check (Sundaram et al. 2010, used by Ruder et al.): a pixel is occluded or its
#: flow wrong when |f + b|² > CONSISTENCY_SCALE (|f|² + |b|²) + CONSISTENCY_OFFSET.
CONSISTENCY_SCALE = 0.01
CONSISTENCY_OFFSET = 0.5
#: Motion boundary: |∇u|² + |∇v|² > BOUNDARY_SCALE |flow|² + BOUNDARY_OFFSET.
BOUNDARY_SCALE = 0.01
BOUNDARY_OFFSET = 0.002


def flow_between(source: RGBArray, target: RGBArray) -> FlowArray:
    """Dense flow from ``source`` to ``target`` (both H×W×3 uint8 RGB, the same size).

    DIS's "medium" preset: at 256 px it costs about 5 ms on one core, next to seconds of painting,
    and its variational refinement gives the smooth flow the warp needs.
    """
    if source.shape != target.shape:
        raise ValueError(f"frames differ in size: {source.shape} and {target.shape}")
    dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
    grey_source = cv2.cvtColor(np.ascontiguousarray(source), cv2.COLOR_RGB2GRAY)
    grey_target = cv2.cvtColor(np.ascontiguousarray(target), cv2.COLOR_RGB2GRAY)
    flow = dis.calc(grey_source, grey_target, np.zeros((*grey_source.shape, 2), np.float32))
    return np.asarray(flow, dtype=np.float32)


def flow_tensor(flow: FlowArray, device: torch.device) -> torch.Tensor:
    """(H, W, 2) array -> (1, 2, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1).unsqueeze(0).to(device)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at ``p + flow(p)`` for every pixel ``p`` (bilinear).

    ``flow`` is (1, 2, H, W) in pixels. Samples that fall outside the picture take the nearest
    edge pixel; :func:`reliable_mask` marks those pixels unreliable anyway.
    """
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=image.device),
        torch.arange(width, dtype=torch.float32, device=image.device),
        indexing="ij",
    )
    x = xs + flow[0, 0]
    y = ys + flow[0, 1]
    grid = torch.stack((2 * x / max(1, width - 1) - 1, 2 * y / max(1, height - 1) - 1), dim=-1).unsqueeze(0)
    grid = grid.expand(image.shape[0], -1, -1, -1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def reliable_mask(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Where the flow into the current frame can be trusted: (1, 1, H, W), 1.0 or 0.0.

    ``backward`` is the flow from the current frame to the previous one, ``forward`` the flow from
    the previous frame to the current one, both (1, 2, H, W). A pixel is unreliable when

    * its source lies outside the previous frame (it entered the picture);
    * the forward flow at its source does not bring it back (occluded, or a wrong match);
    * it lies on a motion boundary, where the flow is smeared across two motions.
    """
    _, _, height, width = backward.shape
    forward_at_source = warp(forward, backward)
    round_trip = (forward_at_source + backward).pow(2).sum(1, keepdim=True)
    magnitudes = forward_at_source.pow(2).sum(1, keepdim=True) + backward.pow(2).sum(1, keepdim=True)
    consistent = round_trip <= CONSISTENCY_SCALE * magnitudes + CONSISTENCY_OFFSET

    gradient = torch.zeros_like(round_trip)
    dx = backward[:, :, :, 1:] - backward[:, :, :, :-1]
    dy = backward[:, :, 1:, :] - backward[:, :, :-1, :]
    gradient[:, :, :, :-1] += dx.pow(2).sum(1, keepdim=True)
    gradient[:, :, :-1, :] += dy.pow(2).sum(1, keepdim=True)
    smooth = gradient <= BOUNDARY_SCALE * backward.pow(2).sum(1, keepdim=True) + BOUNDARY_OFFSET

    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=backward.device),
        torch.arange(width, dtype=torch.float32, device=backward.device),
        indexing="ij",
    )
    source_x = xs + backward[0, 0]
    source_y = ys + backward[0, 1]
    # Half a pixel of slack: a flow of 0.01 px at the border is no entering pixel.
    inside = (source_x > -0.5) & (source_x < width - 0.5) & (source_y > -0.5) & (source_y < height - 0.5)
    return (consistent & smooth & inside.view(1, 1, height, width)).float()


def temporal_loss(image: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder et al.'s short-term temporal loss: the mean over pixels and channels of the squared
    change from the warped previous painting, counted only where ``mask`` is 1 (0-255 units)."""
    return (mask * (image.float() - warped).pow(2)).mean()


def flicker(
    frames: list[torch.Tensor], backward_flows: list[torch.Tensor], masks: list[torch.Tensor]
) -> float:
    """How much a clip changes from frame to frame beyond the motion: the mean absolute change
    (0-255 units) between each frame and the previous one moved along ``backward_flows[k-1]``
    (frame k to k-1), over the pixels ``masks[k-1]`` trusts, averaged over the pairs.

    For the photo frames it is the floor a painting cannot go under (warping and lighting
    changes); for painted frames it measures the strokes that jump.
    """
    if len(frames) < 2:
        return 0.0
    changes = []
    for k in range(1, len(frames)):
        mask = masks[k - 1]
        moved = warp(frames[k - 1].float(), backward_flows[k - 1])
        change = (frames[k].float() - moved).abs().mean(1, keepdim=True)
        changes.append(float((change * mask).sum() / mask.sum().clamp_min(1.0)))
    return sum(changes) / len(changes)


__all__ = ["flicker", "flow_between", "flow_tensor", "reliable_mask", "temporal_loss", "warp"]
