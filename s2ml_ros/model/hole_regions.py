"""
Connected regions of missing depth and the fade of the cascade's change inside large ones.

The regions are labelled on the host (OpenCV): there is no connected-component labelling in
torch, and the input mask is known before the frame reaches the device.
"""

import cv2
import numpy as np
import torch


def hole_region_share(valid: np.ndarray) -> np.ndarray:
    """
    Share of the frame covered by the hole region each missing pixel belongs to.

    :param valid: bool [H, W], True where the depth was measured.
    :return: float32 [H, W]: at a missing pixel, the pixel count of its 8-connected region of
        missing pixels over H * W; 0 at measured pixels.
    :raises ValueError: If ``valid`` is not two-dimensional.
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2:
        raise ValueError(f'valid must be a [H, W] mask, got shape {valid.shape}')
    holes = (~valid).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float32) / max(holes.size, 1)
    area[0] = 0.0  # label 0: the measured pixels
    return area[labels]


def hole_region_share_tensor(valid: torch.Tensor) -> torch.Tensor:
    """
    :func:`hole_region_share` of a batch, computed on the host.

    :param valid: bool [B, 1, H, W], True where measured (any device).
    :return: float32 [B, 1, H, W] on ``valid``'s device.
    """
    masks = valid.detach().to('cpu', torch.bool).numpy()
    shares = np.stack([hole_region_share(m[0])[None] for m in masks])
    return torch.from_numpy(shares).to(valid.device)


def large_hole_gate(share: torch.Tensor, change: float, start: float, end: float
                    ) -> torch.Tensor:
    """
    Share of the cascade's change to D_0 kept at each pixel (``S2MLConfig.large_hole_change``).

    :param share: Region share of each pixel [B, 1, H, W] (:func:`hole_region_share`).
    :param change: Share kept in regions of at least ``end`` of the frame.
    :param start: Region share below which everything is kept.
    :param end: Region share from which ``change`` is kept; linear in between (a step at
        ``start`` when the two are equal).
    :return: Gate [B, 1, H, W] in [``change``, 1].
    """
    if end > start:
        ramp = ((share - start) / (end - start)).clamp(0.0, 1.0)
    else:
        ramp = (share >= start).to(share.dtype)
    return 1.0 - (1.0 - change) * ramp
