"""
Depth-completion metrics, reduced as sums and counts so that batches and processes add up.

One implementation for training, offline evaluation and the bag evaluator. Protocol (RDFC-GAN's
metric code, adopted for S2ML): valid pixels have ground truth > 1e-4 m; per image,
RMSE = sqrt(mean((p - g)^2)), MAE = mean|p - g|, REL = mean(|p - g| / g), delta_i = fraction of
pixels with max(p / g, g / p) < 1.25^i, PSNR = 10 log10(peak^2 / MSE) with peak = 10 m; the
dataset figure is the **mean of the per-image values**. The pooled variants (one MSE over every
pixel of the set) are reported beside them as ``rmse_pooled``, ``mae_pooled`` and
``psnr_pooled``. Every metric is reported on all valid ground-truth pixels and, when the raw
depth is given, separately on the raw-depth hole pixels (raw = 0, ground truth valid) under a
``hole_`` prefix.

Pure torch + numpy; no ROS.
"""

import math
from typing import Dict, Optional, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

METRIC_NAMES = ('rmse', 'mae', 'rel', 'delta1', 'delta2', 'delta3', 'psnr',
                'rmse_pooled', 'mae_pooled', 'psnr_pooled')

# Layout of one subset's sums: per-image sums first, then per-pixel sums.
_FIELDS = ('images', 'rmse', 'mae', 'rel', 'delta1', 'delta2', 'delta3', 'psnr',
           'sq_err', 'abs_err', 'pixels', 'updates')
_SUBSETS = ('', 'hole_')
# PSNR of a perfect image would be infinite; the MSE is floored so it stays finite (120 dB).
_MIN_MSE = 1e-10


def _as_tensor(x: ArrayLike, device: torch.device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x.to(device=device)


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """[H, W], [B, H, W] or [B, 1, H, W] -> [B, H, W]."""
    if x.dim() == 2:
        x = x[None]
    elif x.dim() == 4:
        if x.shape[1] != 1:
            raise ValueError(f'{name} must have one channel, got shape {tuple(x.shape)}')
        x = x[:, 0]
    elif x.dim() != 3:
        raise ValueError(f'{name} must be [H, W], [B, H, W] or [B, 1, H, W], got shape '
                         f'{tuple(x.shape)}')
    return x


class DepthMetricAccumulator:
    """
    Accumulates depth metrics over images as sums and counts.

    Call :meth:`update` per batch and :meth:`compute` at the end. Under DDP, all-reduce
    :attr:`totals` (SUM) before :meth:`compute` to get the metrics of the whole set.

    :param peak_m: PSNR peak value, meters (10 m: the NYU-Depth V2 / SUN RGB-D depth cap).
    :param min_gt_m: Ground truth at or below this counts as invalid, meters.
    :param device: Where the sums live (the device of the predictions avoids copies).
    """

    def __init__(self, peak_m: float = 10.0, min_gt_m: float = 1e-4,
                 device: Union[str, torch.device] = 'cpu') -> None:
        self.peak_m = float(peak_m)
        self.min_gt_m = float(min_gt_m)
        self.totals = torch.zeros(len(_SUBSETS) * len(_FIELDS), dtype=torch.float64,
                                  device=torch.device(device))

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.totals.zero_()

    @torch.no_grad()
    def update(self, pred: ArrayLike, gt: ArrayLike, valid_mask: Optional[ArrayLike] = None,
               raw: Optional[ArrayLike] = None) -> None:
        """
        Add a batch of images.

        :param pred: Predicted depth, meters, [H, W], [B, H, W] or [B, 1, H, W].
        :param gt: Ground-truth depth, meters, same shape; <= ``min_gt_m`` or non-finite =
            invalid.
        :param valid_mask: Optional bool mask of pixels to score, same shape; combined with the
            ground-truth validity.
        :param raw: Optional raw input depth, meters, same shape, 0 = hole; when given, the
            hole subset (raw <= 0 and ground truth valid) is scored too.
        """
        dev = self.totals.device
        p = _as_batch(_as_tensor(pred, dev), 'pred').double()
        g = _as_batch(_as_tensor(gt, dev), 'gt').double()
        if p.shape != g.shape:
            raise ValueError(f'pred {tuple(p.shape)} and gt {tuple(g.shape)} differ in shape')
        valid = torch.isfinite(g) & (g > self.min_gt_m)
        if valid_mask is not None:
            m = _as_batch(_as_tensor(valid_mask, dev), 'valid_mask').bool()
            if m.shape != g.shape:
                raise ValueError(f'valid_mask {tuple(m.shape)} does not match gt '
                                 f'{tuple(g.shape)}')
            valid &= m
        p = torch.nan_to_num(p, nan=0.0, posinf=0.0, neginf=0.0)
        subsets = [valid]
        flat = g.shape[0], -1
        if raw is not None:
            r = _as_batch(_as_tensor(raw, dev), 'raw').double()
            if r.shape != g.shape:
                raise ValueError(f'raw {tuple(r.shape)} does not match gt {tuple(g.shape)}')
            subsets.append(valid & ~(torch.isfinite(r) & (r > 0)))
        n_f = len(_FIELDS)
        for k, mask in enumerate(subsets):
            self.totals[k * n_f:(k + 1) * n_f] += self._sums(
                p.reshape(flat), g.reshape(flat), mask.reshape(flat))

    def _sums(self, p: torch.Tensor, g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = mask.double()
        n = w.sum(dim=1)
        has = n > 0
        g_safe = torch.where(mask, g, torch.ones_like(g))
        err = (p - g) * w
        sq = (err * err).sum(dim=1)
        ab = err.abs().sum(dim=1)
        rel = (err.abs() / g_safe).sum(dim=1)
        ratio = torch.maximum(p.clamp_min(1e-12) / g_safe, g_safe / p.clamp_min(1e-12))
        n_safe = n.clamp_min(1)
        mse = sq / n_safe
        per = [
            has.double().sum(),
            torch.where(has, mse.sqrt(), 0).sum(),
            torch.where(has, ab / n_safe, 0).sum(),
            torch.where(has, rel / n_safe, 0).sum(),
        ]
        for i in (1, 2, 3):
            frac = ((ratio < 1.25 ** i).double() * w).sum(dim=1) / n_safe
            per.append(torch.where(has, frac, 0).sum())
        psnr = 10 * torch.log10(self.peak_m ** 2 / mse.clamp_min(_MIN_MSE))
        per.append(torch.where(has, psnr, 0).sum())
        one = torch.ones((), dtype=torch.float64, device=p.device)
        per += [sq.sum(), ab.sum(), n.sum(), one]
        return torch.stack(per)

    def compute(self) -> Dict[str, float]:
        """
        Metrics of everything accumulated.

        :return: {'rmse', 'mae', 'rel', 'delta1', 'delta2', 'delta3', 'psnr', 'rmse_pooled',
            'mae_pooled', 'psnr_pooled', 'images', 'pixels'} in meters / dB / fractions, and
            the same keys prefixed 'hole_' when raw depth was given; NaN where no pixel counted.
        """
        t = self.totals.detach().cpu().numpy()
        out: Dict[str, float] = {}
        n_f = len(_FIELDS)
        for k, prefix in enumerate(_SUBSETS):
            s = dict(zip(_FIELDS, t[k * n_f:(k + 1) * n_f]))
            if k > 0 and s['updates'] == 0:
                continue  # raw depth was never given: no hole figures
            n_img, n_pix = s['images'], s['pixels']
            for name in ('rmse', 'mae', 'rel', 'delta1', 'delta2', 'delta3', 'psnr'):
                out[prefix + name] = float(s[name] / n_img) if n_img > 0 else math.nan
            mse = s['sq_err'] / n_pix if n_pix > 0 else math.nan
            out[prefix + 'rmse_pooled'] = float(math.sqrt(mse)) if n_pix > 0 else math.nan
            out[prefix + 'mae_pooled'] = float(s['abs_err'] / n_pix) if n_pix > 0 else math.nan
            out[prefix + 'psnr_pooled'] = (
                float(10 * math.log10(self.peak_m ** 2 / max(mse, _MIN_MSE)))
                if n_pix > 0 else math.nan)
            out[prefix + 'images'] = float(n_img)
            out[prefix + 'pixels'] = float(n_pix)
        return out


def compute_depth_metrics(pred: ArrayLike, gt: ArrayLike, valid_mask: Optional[ArrayLike] = None,
                          raw: Optional[ArrayLike] = None, peak_m: float = 10.0,
                          ) -> Dict[str, float]:
    """
    Metrics of one image or batch (see :class:`DepthMetricAccumulator`).

    :param pred: Predicted depth, meters, [H, W], [B, H, W] or [B, 1, H, W].
    :param gt: Ground-truth depth, meters, same shape.
    :param valid_mask: Optional bool mask of pixels to score.
    :param raw: Optional raw depth (0 = hole) for the hole-only figures.
    :param peak_m: PSNR peak, meters.
    :return: The metric dict of :meth:`DepthMetricAccumulator.compute`.
    """
    acc = DepthMetricAccumulator(peak_m=peak_m)
    acc.update(pred, gt, valid_mask, raw)
    return acc.compute()
