"""
The S2ML network: a cascade of spatio-spectral fusion pairs refining depth progressively.

Zhao et al., "S2ML: Spatio-Spectral Mutual Learning for Depth Completion", arXiv 2511.06033.
Only the paper's abstract and summaries were available; the module equations are a reasoned
reconstruction from the blocks it names (docs/architecture.md lists every choice).
"""

from typing import List, Optional, Union

import torch
from torch import nn
import torch.nn.functional as F

from .config import S2MLConfig
from .hole_regions import hole_region_share_tensor, large_hole_gate
from .layers import initial_fill, ResidualConv, SpatialFusion, SpectralFusion

# ImageNet statistics: the usual RGB normalisation of the depth-completion baselines.
_RGB_MEAN = (0.485, 0.456, 0.406)
_RGB_STD = (0.229, 0.224, 0.225)


class FusionPair(nn.Module):
    """
    One spatio-spectral fusion pair: SpeFM, then SpaFM, then a residual depth head.

    :param config: Architecture.
    :param update_rgb: Refine the RGB features for the next pair (not needed by the last one).
    """

    def __init__(self, config: S2MLConfig, update_rgb: bool) -> None:
        super().__init__()
        c, r = config.embed_dim, config.downscale
        self.spectral = SpectralFusion(c, config.amplitude_log_bound)
        self.spatial = SpatialFusion(c, config.blocks_per_pair, config.num_heads,
                                     config.window_size, config.mlp_ratio)
        self.rgb_update = ResidualConv(c) if update_rgb else None
        # Emits r*r channels that PixelShuffle turns into a full-resolution residual.
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1),
                                  nn.Conv2d(c, r * r, 3, padding=1), nn.PixelShuffle(r))


class S2ML(nn.Module):
    """
    S2ML depth completion network.

    ``forward(rgb, depth)`` takes rgb [B, 3, H, W] in [0, 1] and raw depth [B, 1, H, W] in
    meters (0 or non-finite = missing) for any H, W, and returns the list of every stage's
    depth [B, 1, H, W] in meters, final stage last. In eval mode outputs are clamped to >= 0;
    in training mode they are not, so the loss can push negative values back up.

    ``sync_free`` (a run-time setting, not part of the config or checkpoint) makes the forward
    pass a fixed sequence of kernels with no host synchronisation, as CUDA graph capture needs:
    the initial fill then sweeps whole images, with the same result.

    :param config: Architecture.
    """

    def __init__(self, config: S2MLConfig) -> None:
        super().__init__()
        self.config = config
        c, r = config.embed_dim, config.downscale
        self.rgb_stem = nn.Sequential(nn.PixelUnshuffle(r), nn.Conv2d(3 * r * r, c, 3, padding=1),
                                      nn.LeakyReLU(0.1), nn.Conv2d(c, c, 3, padding=1))
        self.depth_stem = nn.Sequential(nn.PixelUnshuffle(r),
                                        nn.Conv2d(2 * r * r, c, 3, padding=1),
                                        nn.LeakyReLU(0.1), nn.Conv2d(c, c, 3, padding=1))
        self.sync_free = False
        self.pairs = nn.ModuleList([FusionPair(config, update_rgb=k < config.num_pairs - 1)
                                    for k in range(config.num_pairs)])
        self.register_buffer('rgb_mean', torch.tensor(_RGB_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('rgb_std', torch.tensor(_RGB_STD).view(1, 3, 1, 1),
                             persistent=False)

    def _meters_per_unit(self, depth_m: torch.Tensor,
                         valid: torch.Tensor) -> Union[float, torch.Tensor]:
        """
        Meters per normalised depth unit of each frame.

        That is d_max, times the factor by which ``depth_scale_cap_m`` shrinks a deep frame.

        :param depth_m: Measured depth [B, 1, H, W], meters, 0 where missing.
        :param valid: bool [B, 1, H, W], True where measured.
        :return: d_max (a float) with the cap off; else float [B, 1, 1, 1], d_max times a
            factor >= 1 (1 for frames within the cap or with no measured pixel).
        """
        cap = self.config.depth_scale_cap_m
        if not cap:
            return self.config.max_depth_m
        measured = torch.where(valid, depth_m, torch.full_like(depth_m, float('nan')))
        p90 = torch.nanquantile(measured.flatten(1).float(), 0.9, dim=1)
        scale = torch.nan_to_num(p90 / cap, nan=1.0).clamp_min(1.0)
        return (self.config.max_depth_m * scale).to(depth_m.dtype).view(-1, 1, 1, 1)

    def _large_hole_gate(self, valid: torch.Tensor, hole_share: Optional[torch.Tensor]
                         ) -> Optional[torch.Tensor]:
        """
        Share of the cascade's change kept at each pixel (``large_hole_change``).

        :param valid: bool [B, 1, H, W], True where measured.
        :param hole_share: Given region shares [B, 1, H, W], or None to label them here.
        :return: Gate [B, 1, H, W], or None when the setting is off.
        :raises ValueError: When the shares are needed under CUDA graph capture.
        """
        cfg = self.config
        if not cfg.fades_large_holes:
            return None
        if hole_share is None:
            if self.sync_free:
                raise ValueError('large_hole_change needs hole_share passed in when the '
                                 'forward pass runs without host synchronisation')
            hole_share = hole_region_share_tensor(valid)
        return large_hole_gate(hole_share.to(torch.float32), cfg.large_hole_change,
                               cfg.large_hole_start, cfg.large_hole_end)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor,
                guide_rgb: Optional[torch.Tensor] = None,
                with_initial: bool = False,
                hole_share: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """
        Complete depth.

        :param rgb: Colour [B, 3, H, W] in [0, 1].
        :param depth: Raw depth [B, 1, H, W] in meters; 0, negative or non-finite = missing.
        :param guide_rgb: Colour [B, 3, H, W] in [0, 1] that guides the initial fill D_0;
            None: ``rgb``. Training passes the true colour here while the network's own
            colour input is withheld from some frames (``training.train --colour-dropout``).
        :param with_initial: Put the initial fill D_0 [B, 1, H, W] (meters, no gradient: the
            fill has no parameters) before the stage outputs, for losses on the cascade's change
            to it (``training.train --change-weight``).
        :param hole_share: With ``large_hole_change`` below 1, the share of the frame covered
            by each pixel's hole region [B, 1, H, W]
            (:func:`s2ml_ros.model.hole_regions.hole_region_share` of ``depth``'s mask);
            None: computed here on the host, which CUDA graph capture (``sync_free``) cannot do.
        :return: K depth maps [B, 1, H, W] in meters, one per fusion pair, final last (K + 1
            with ``with_initial``, D_0 first).
        """
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f'rgb must be [B, 3, H, W], got {tuple(rgb.shape)}')
        if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[0] != rgb.shape[0] \
                or depth.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(
                f'depth must be [B, 1, H, W] matching rgb {tuple(rgb.shape)}, '
                f'got {tuple(depth.shape)}')
        if guide_rgb is not None and guide_rgb.shape != rgb.shape:
            raise ValueError(f'guide_rgb must match rgb {tuple(rgb.shape)}, '
                             f'got {tuple(guide_rgb.shape)}')
        if hole_share is not None and hole_share.shape != depth.shape:
            raise ValueError(f'hole_share must match depth {tuple(depth.shape)}, '
                             f'got {tuple(hole_share.shape)}')
        h, w = depth.shape[-2:]
        m = self.config.pad_multiple
        pad_h, pad_w = (-h) % m, (-w) % m

        valid = torch.isfinite(depth) & (depth > 0)
        depth_m = torch.where(valid, depth, torch.zeros_like(depth))
        unit_m = self._meters_per_unit(depth_m, valid)
        depth_n = depth_m / unit_m
        mask = valid.to(depth_n.dtype)
        gate = self._large_hole_gate(valid, hole_share)
        if pad_h or pad_w:
            # Bottom/right only, so pixel coordinates (and intrinsics) are unchanged; padded
            # depth counts as missing.
            rgb = F.pad(rgb, (0, pad_w, 0, pad_h), mode='replicate')
            if guide_rgb is not None:
                guide_rgb = F.pad(guide_rgb, (0, pad_w, 0, pad_h), mode='replicate')
            depth_n = F.pad(depth_n, (0, pad_w, 0, pad_h))
            mask = F.pad(mask, (0, pad_w, 0, pad_h))
            if gate is not None:
                gate = F.pad(gate, (0, pad_w, 0, pad_h), value=1.0)
        depth_n = initial_fill(depth_n, mask, rgb if guide_rgb is None else guide_rgb,
                               self.config.initial_fill,
                               self.config.fill_iterations, self.config.fill_solver,
                               self.config.fill_guide, whole_image=self.sync_free)
        rgb_n = (rgb - self.rgb_mean) / self.rgb_std
        rgb_feat = self.rgb_stem(rgb_n)
        depth_feat = self.depth_stem(torch.cat([depth_n, mask], dim=1))
        current = depth_n  # D_0
        # The cap bounds what the cascade emits, not its running sum, so later stages can
        # still correct an earlier one that went too far.
        far_limit = depth_n * (1.0 + self.config.far_change_cap) \
            if self.config.far_change_cap else None
        outputs = [(depth_n[..., :h, :w] * unit_m).detach()] if with_initial else []
        for pair in self.pairs:
            spectral = pair.spectral(rgb_feat, depth_feat)
            depth_feat = pair.spatial(depth_feat, spectral, rgb_feat)
            current = current + pair.head(depth_feat)
            if pair.rgb_update is not None:
                rgb_feat = pair.rgb_update(rgb_feat)
            emitted = current if far_limit is None else torch.minimum(current, far_limit)
            if gate is not None:
                emitted = depth_n + gate * (emitted - depth_n)
            out = emitted[..., :h, :w] * unit_m
            outputs.append(out if self.training else out.clamp_min(0.0))
        return outputs
