"""
Joint loss for the S2ML cascade: masked L1 on every stage plus a frequency-domain L1 term.

L = sum_k w_k * L1_valid(D_k, G) + lambda_f * sum_k w_k * L_freq(D_k, G), with w_k = 1 for the
last stage and 0.5 for earlier ones and lambda_f = 0.1. L1_valid is the mean absolute error over
pixels whose ground truth is valid (> 1e-4 m); L_freq is the mean L1 distance between the
real and imaginary parts of rfft2(D * v) and rfft2(G * v) (orthonormal FFT, v = ground-truth
validity), the multi-output L1 + 0.1 FFT-L1 recipe of MIMO-UNet (Cho et al., ICCV 2021), which
this reconstruction of the paper's joint loss follows. ``pixel_loss='berhu'`` swaps the L1 term
for the reverse Huber loss, ``'l2'`` for the squared error; ``planted_berhu_m`` squares only the
large errors of pixels hidden under moved hole shapes. Depths are in meters. Pure torch.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn


class JointLoss(nn.Module):
    """
    Stage-weighted masked L1 plus frequency L1 over the cascade outputs.

    :param stage_weights: One weight per stage, or None for 1 on the last stage and
        ``early_weight`` on the others.
    :param early_weight: Weight of the non-final stages when ``stage_weights`` is None.
    :param freq_weight: lambda_f, weight of the frequency term.
    :param min_gt_m: Ground truth at or below this is invalid, meters.
    :param hole_weight: Extra L1 weight of pixels missing from the raw input (0 = the plain
        joint loss). Holes are a few percent of a frame but all of the task: on measured pixels
        the answer is nearly the input.
    :param planted_weight: Extra L1 weight of measured pixels hidden under moved hole shapes
        (:class:`training.transforms.PlantedHoles`), on top of ``hole_weight``. Natural holes
        outnumber them and pull the refinement towards what natural holes need (often a
        different surface); these pixels teach continuing the surface around a hole, which is
        what frames scored by hiding measured pixels ask for.
    :param pixel_loss: 'l1' (the paper's), 'berhu', the reverse Huber loss of Laina et al.
        (3DV 2016): |e| up to c = 0.2 max|e| of the batch (or ``berhu_threshold_m``) and
        (e^2 + c^2) / 2c beyond, so
        large errors pull towards the mean as in L2, or 'l2', the squared error e^2 (m^2)
        everywhere. L1's optimum in an ambiguous hole is the median of the plausible depths
        (one surface or the other); RMSE, the score of depth completion, is lowest at their
        mean, which is L2's optimum.
    :param change_weight: lambda_c, weight of an L1 penalty on each stage's change to the
        initial fill D_0 over the input's holes, with the pixel term's own per-pixel weights
        and normaliser: under L1 a hole pixel then leaves D_0 only where the share of likely
        depths on one side of it exceeds the other side's by more than lambda_c, so the
        cascade keeps the moves it is sure of and leaves the rest to D_0 (0 = off).
    :param planted_berhu_m: c, meters: on pixels hidden under moved hole shapes the pixel term
        is the reverse Huber loss with this fixed threshold, |e| up to c and (e^2 + c^2) / 2c
        beyond (0 = the pixel term of ``pixel_loss`` there too). A moved shape hides measured
        surfaces, which frames scored by hiding measured pixels score: where such a pixel could
        lie on either side of a depth edge, errors of metres pull it towards the mean of the
        two depths, RMSE's optimum, while errors within c (noise on one surface) keep L1's
        sharpness. The sensor's own holes, where the simulated score is, keep ``pixel_loss``.
    :param berhu_threshold_m: A fixed threshold c for ``pixel_loss='berhu'``, meters (0 = 0.2
        x the batch's largest error, Laina et al.'s).
    """

    def __init__(self, stage_weights: Optional[Sequence[float]] = None,
                 early_weight: float = 0.5, freq_weight: float = 0.1,
                 min_gt_m: float = 1e-4, hole_weight: float = 0.0,
                 planted_weight: float = 0.0, pixel_loss: str = 'l1',
                 change_weight: float = 0.0, planted_berhu_m: float = 0.0,
                 berhu_threshold_m: float = 0.0) -> None:
        super().__init__()
        if pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f'pixel_loss must be one of {PIXEL_LOSSES}, got {pixel_loss!r}')
        self.pixel_loss = pixel_loss
        self.stage_weights = None if stage_weights is None else [float(w) for w in stage_weights]
        self.early_weight = float(early_weight)
        self.freq_weight = float(freq_weight)
        self.min_gt_m = float(min_gt_m)
        if hole_weight < 0:
            raise ValueError(f'hole_weight must be >= 0, got {hole_weight}')
        self.hole_weight = float(hole_weight)
        if planted_weight < 0:
            raise ValueError(f'planted_weight must be >= 0, got {planted_weight}')
        self.planted_weight = float(planted_weight)
        if not 0.0 <= change_weight < 1.0:
            raise ValueError(f'change_weight must be in [0, 1) (at 1 no hole pixel gains by '
                             f'leaving D_0), got {change_weight}')
        self.change_weight = float(change_weight)
        if not (math.isfinite(planted_berhu_m) and planted_berhu_m >= 0):
            raise ValueError(f'planted_berhu_m must be a finite threshold >= 0 m, '
                             f'got {planted_berhu_m}')
        self.planted_berhu_m = float(planted_berhu_m)
        if not (math.isfinite(berhu_threshold_m) and berhu_threshold_m >= 0):
            raise ValueError(f'berhu_threshold_m must be a finite threshold >= 0 m, '
                             f'got {berhu_threshold_m}')
        if berhu_threshold_m > 0 and pixel_loss != 'berhu':
            raise ValueError(f'berhu_threshold_m {berhu_threshold_m} is the threshold of '
                             f"pixel_loss='berhu', got pixel_loss={pixel_loss!r}")
        self.berhu_threshold_m = float(berhu_threshold_m)

    def weights_for(self, num_stages: int) -> List[float]:
        """:return: The weight of each of ``num_stages`` stages."""
        if self.stage_weights is not None:
            if len(self.stage_weights) != num_stages:
                raise ValueError(f'{len(self.stage_weights)} stage weights given for '
                                 f'{num_stages} stage outputs')
            return list(self.stage_weights)
        return [self.early_weight] * (num_stages - 1) + [1.0]

    def forward(self, preds: Sequence[torch.Tensor], gt: torch.Tensor,
                valid_mask: Optional[torch.Tensor] = None,
                raw_depth: Optional[torch.Tensor] = None,
                planted: Optional[torch.Tensor] = None,
                initial: Optional[torch.Tensor] = None,
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """
        Compute the loss.

        :param preds: Stage outputs, each [B, 1, H, W] meters, final last (or one tensor).
        :param gt: Ground truth [B, 1, H, W], meters; <= min_gt_m or non-finite = invalid.
        :param valid_mask: Optional bool [B, 1, H, W] further restricting the scored pixels.
        :param raw_depth: Raw input depth [B, 1, H, W], meters (0 or non-finite = hole); needed
            when ``hole_weight`` > 0.
        :param planted: [B, 1, H, W], 1 on pixels hidden by PlantedHoles, else 0; weighted
            when ``planted_weight`` > 0 (None = no such pixels).
        :param initial: The initial fill D_0 [B, 1, H, W], meters; needed when
            ``change_weight`` > 0 (with ``raw_depth``).
        :return: (scalar loss, detached parts {'l1', 'freq', 'l1_final', 'change'}; with berHu
            or L2 the 'l1' parts hold that term).
        """
        if isinstance(preds, torch.Tensor):
            preds = [preds]
        valid = torch.isfinite(gt) & (gt > self.min_gt_m)
        if valid_mask is not None:
            valid = valid & valid_mask.bool()
        v = valid.float()
        g = torch.where(valid, gt, torch.zeros_like(gt)).float()
        weight = v
        hole = None
        if self.hole_weight > 0 or self.change_weight > 0:
            if raw_depth is None:
                raise ValueError('hole_weight > 0 or change_weight > 0 needs raw_depth')
            hole = (~(torch.isfinite(raw_depth) & (raw_depth > 0))).float()
        if self.hole_weight > 0:
            weight = v * (1.0 + self.hole_weight * hole)
        if self.planted_weight > 0 and planted is not None:
            if planted.shape != gt.shape:
                raise ValueError(f'planted mask {tuple(planted.shape)} does not match ground '
                                 f'truth {tuple(gt.shape)}')
            weight = weight + v * self.planted_weight * planted.float()
        count = weight.sum().clamp_min(1.0)
        planted_mean = None
        if self.planted_berhu_m > 0 and planted is not None:
            planted_mean = (planted > 0) & valid
        change_weight = None
        if self.change_weight > 0:
            if initial is None:
                raise ValueError('change_weight > 0 needs initial')
            if initial.shape != gt.shape:
                raise ValueError(f'initial fill {tuple(initial.shape)} does not match ground '
                                 f'truth {tuple(gt.shape)}')
            initial = initial.float()
            change_weight = self.change_weight * weight * hole
        g_spec = None
        if self.freq_weight > 0:
            g_spec = _spectrum(g * v)
        total = gt.new_zeros((), dtype=torch.float32)
        l1_sum = gt.new_zeros((), dtype=torch.float32)
        freq_sum = gt.new_zeros((), dtype=torch.float32)
        l1_final = gt.new_zeros((), dtype=torch.float32)
        change_sum = gt.new_zeros((), dtype=torch.float32)
        for w, pred in zip(self.weights_for(len(preds)), preds):
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {tuple(pred.shape)} does not match ground truth '
                                 f'{tuple(gt.shape)}')
            p = pred.float()
            abs_error = (p - g).abs()
            error = abs_error
            if self.pixel_loss == 'berhu':
                error = _reverse_huber(abs_error, self.berhu_threshold_m or _batch_threshold(
                    abs_error, valid))
            elif self.pixel_loss == 'l2':
                error = abs_error * abs_error
            if planted_mean is not None:
                error = torch.where(planted_mean,
                                    _reverse_huber(abs_error, self.planted_berhu_m), error)
            l1 = (error * weight).sum() / count
            total = total + w * l1
            l1_sum = l1_sum + w * l1.detach()
            l1_final = l1.detach()
            if change_weight is not None:
                change = ((p - initial).abs() * change_weight).sum() / count
                total = total + w * change
                change_sum = change_sum + w * change.detach()
            if g_spec is not None:
                freq = (_spectrum(p * v) - g_spec).abs().mean()
                total = total + self.freq_weight * w * freq
                freq_sum = freq_sum + w * freq.detach()
        return total, {'l1': l1_sum, 'freq': freq_sum, 'l1_final': l1_final,
                       'change': change_sum}


PIXEL_LOSSES = ('l1', 'berhu', 'l2')


def _batch_threshold(error: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """
    Laina et al.'s reverse Huber threshold: 0.2 x the largest valid error of the batch.

    :param error: |prediction - ground truth| [B, 1, H, W], meters.
    :param valid: Bool [B, 1, H, W], the pixels whose largest error sets the threshold.
    :return: The threshold, a detached scalar tensor, meters (at least 1e-6).
    """
    largest = torch.where(valid, error, torch.zeros_like(error)).max().detach()
    return (0.2 * largest).clamp_min(1e-6)


def _reverse_huber(error: torch.Tensor, threshold_m: Union[float, torch.Tensor]) -> torch.Tensor:
    """
    Reverse Huber (berHu) of absolute errors.

    :param error: |prediction - ground truth| [B, 1, H, W], meters.
    :param threshold_m: c, meters (> 0): the loss is ``error`` up to c, (e^2 + c^2) / 2c beyond.
    :return: The loss per pixel [B, 1, H, W].
    """
    c = threshold_m
    return torch.where(error <= c, error, (error * error + c * c) / (2 * c))


def _spectrum(x: torch.Tensor) -> torch.Tensor:
    """Real and imaginary parts of the orthonormal rfft2, stacked, in float32 (no autocast)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        spec = torch.fft.rfft2(x.float(), norm='ortho')
    return torch.view_as_real(spec)
