"""
Building blocks of S2ML: spectral fusion, Swin-Conv blocks and window attention.

The Swin-Conv block follows SCUNet (Zhang et al., "Practical Blind Denoising via Swin-Conv-UNet
and Data Synthesis", 2022; github.com/cszn/SCUNet, Apache-2.0): a 1x1 conv, a residual conv half
and a Swin transformer half, a 1x1 conv and a residual. Window attention follows Swin
(Liu et al., ICCV 2021) with a learned relative position bias and shifted windows. The spectral
fusion follows the amplitude/phase Fourier fusion of SFINet (Zhou et al., ECCV 2022), with a
log-domain amplitude correction and a unit-circle phase correction (see docs/architecture.md).

Layouts: conv and FFT blocks are NCHW; attention blocks are NHWC.
"""

import functools
import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from .config import FILL_GUIDES, FILL_SOLVERS


def pyramid_fill(depth: torch.Tensor, mask: torch.Tensor, local: bool = False) -> torch.Tensor:
    """
    Fill holes coarse-to-fine with averages of the valid pixels around them (no parameters).

    Masked depth and mask are average-pooled by 2 until one pixel is left; going back up, a
    pixel keeps its own level's valid average where it has one and takes the bilinearly
    upsampled coarser estimate where it has none. Measured pixels come out unchanged; each hole
    gets the average of the nearest valid surroundings. This is the cascade's initial depth D_0,
    so the fusion pairs refine a plausible surface instead of inventing depth from zero.

    With ``local``, a hole pixel without a valid pixel in its own cell first tries the valid
    average of the 3x3 cells centred on it at that level, and only then the coarser estimate.
    The pooling cells are aligned to the grid, not to the hole, so without this a pixel next
    to one side of a hole can be filled from the far side of its cell (across a depth edge):
    on real frames with hidden pixels this halves the error at object boundaries
    (docs/architecture.md).

    :param depth: Depth [B, 1, H, W] (any unit), 0 in holes.
    :param mask: Validity [B, 1, H, W], 1 = measured, 0 = hole.
    :param local: Prefer the centred 3x3 neighbourhood at each level (see above).
    :return: Filled depth [B, 1, H, W]; 0 only where an image has no valid pixel at all.
    """
    levels = [(depth * mask, mask)]
    while min(levels[-1][1].shape[-2:]) > 1:
        d, m = levels[-1]
        levels.append((F.avg_pool2d(d, 2, ceil_mode=True), F.avg_pool2d(m, 2, ceil_mode=True)))
    filled = None
    for d, m in reversed(levels):
        own = d / m.clamp_min(1e-6)
        if filled is None:
            filled = torch.where(m > 0, own, torch.zeros_like(own))
            continue
        coarse = F.interpolate(filled, size=d.shape[-2:], mode='bilinear', align_corners=False)
        if local:
            d3 = F.avg_pool2d(d, 3, stride=1, padding=1)
            m3 = F.avg_pool2d(m, 3, stride=1, padding=1)
            coarse = torch.where(m3 > 0, d3 / m3.clamp_min(1e-6), coarse)
        filled = torch.where(m > 0, own, coarse)
    return filled


# The 8-neighbourhood offsets (dy, dx).
_NEIGHBOUR_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                           if (dy, dx) != (0, 0))


def _neighbour_index(height: int, width: int, pixels: torch.Tensor) -> torch.Tensor:
    """
    Flat indices of the 8 neighbours of some pixels of a [B, 1, H, W] tensor.

    :param pixels: Flat indices [N] into the B*H*W pixels.
    :return: Flat indices [N, 8]; neighbours outside the image are clamped to its border.
    """
    plane = height * width
    image, rest = pixels // plane, pixels % plane
    y, x = rest // width, rest % width
    dy = torch.tensor([o[0] for o in _NEIGHBOUR_OFFSETS], device=pixels.device)
    dx = torch.tensor([o[1] for o in _NEIGHBOUR_OFFSETS], device=pixels.device)
    ny = (y[:, None] + dy).clamp(0, height - 1)
    nx = (x[:, None] + dx).clamp(0, width - 1)
    return image[:, None] * plane + ny * width + nx


def colour_affinities(guide: torch.Tensor, pixels: torch.Tensor, neighbours: torch.Tensor
                      ) -> torch.Tensor:
    """
    Normalised 3x3 colour affinities of Levin et al.'s colorization (NYU toolbox weights).

    w_rs = exp(-|I_r - I_s|^2 / sigma_r) with sigma_r = max(0.6 var_r, min_s |I_r - I_s|^2 /
    ln 100, 2e-6), var_r the variance of the 3x3 window, so every pixel has at least one
    neighbour of weight >= 0.01 and flat regions average evenly. With C channels, squared
    differences and variances are means over the channels: one grey channel gives the NYU
    toolbox's weights exactly; RGB also separates surfaces of equal brightness and different
    hue.

    :param guide: Guide image, flat [B*H*W] (grey) or [C, B*H*W], in [0, 1].
    :param pixels: Flat indices [N] of the pixels r.
    :param neighbours: Flat indices [N, 8] of their neighbours s (:func:`_neighbour_index`).
    :return: Weights [N, 8], each row summing to 1.
    """
    planes = guide[None] if guide.dim() == 1 else guide
    # One channel at a time: gathering from a [C, P] tensor's rows is several times faster
    # than gathering [N, 8, C] from a [P, C] one.
    return _affinity_weights([(plane[pixels][:, None], plane[neighbours]) for plane in planes])


def _affinity_weights(planes: List[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """
    Compute the weights of :func:`colour_affinities` from channel centre and neighbour values.

    :param planes: Per guide channel, (centre, around): the pixels' own values, size 1 along
        dim 1, and their 8 neighbours' values along dim 1 (same other dims: [N, 1] / [N, 8]
        for listed pixels, [B, 1, P] / [B, 8, P] for whole images).
    :return: Weights shaped like ``around``, summing to 1 along dim 1.
    """
    diff2 = window_var = 0.0
    for centre, around in planes:
        diff2 = diff2 + (around - centre) ** 2
        window_mean = (around.sum(1, keepdim=True) + centre) / 9.0
        # Two-pass variance: E[I^2] - E[I]^2 cancels badly in float32 on flat patches.
        window_var = window_var + (((around - window_mean) ** 2).sum(1, keepdim=True)
                                   + (centre - window_mean) ** 2) / 9.0
    diff2, window_var = diff2 / len(planes), window_var / len(planes)
    min_diff2 = diff2.amin(1, keepdim=True)
    sigma = torch.maximum(0.6 * window_var, min_diff2 / math.log(100.0)).clamp_min(2e-6)
    weights = torch.exp(-diff2 / sigma)
    return weights / weights.sum(1, keepdim=True)


# Position of the centre in a flattened 3x3 window (F.unfold order); the other 8 positions
# are _NEIGHBOUR_OFFSETS in order.
_WINDOW_CENTRE = 4


def _windows3x3(image: torch.Tensor) -> torch.Tensor:
    """
    Every pixel's 3x3 window, pixels outside the image clamped to its border.

    :param image: [B, 1, H, W].
    :return: [B, 9, H*W], row-major window positions (centre at ``_WINDOW_CENTRE``).
    """
    return F.unfold(F.pad(image, (1, 1, 1, 1), mode='replicate'), 3)


def _whole_image_sweeps(filled: torch.Tensor, known: torch.Tensor, guide: torch.Tensor,
                        sweeps: int, solver: str) -> torch.Tensor:
    """
    Run the sweeps of :func:`guided_multigrid_fill` over whole images: no data-dependent shape.

    The same equations, weights, pixel classes and update order as the hole-only sweeps, so
    the result is the same up to float rounding. Each sweep touches every pixel (about 5x the
    arithmetic at 20% holes) but never asks the host how many holes there are, so the work is a
    fixed sequence of kernels that a CUDA graph can replay.

    :param filled: Start values [B, 1, H, W]; known pixels hold their measured value.
    :param known: bool [B, 1, H, W], True where the value is fixed.
    :param guide: Guide [B, C, H, W] of this level.
    :param sweeps: Number of sweeps.
    :param solver: 'sor' or 'jacobi'.
    :return: Filled depth [B, 1, H, W].
    """
    b, _, height, width = filled.shape
    planes = []
    for c in range(guide.shape[1]):
        # Slices, not a list index: that would be a host-to-device copy, which capture forbids.
        window = _windows3x3(guide[:, c:c + 1])
        around = torch.cat([window[:, :_WINDOW_CENTRE], window[:, _WINDOW_CENTRE + 1:]], 1)
        planes.append((window[:, _WINDOW_CENTRE:_WINDOW_CENTRE + 1], around))
    weights = _affinity_weights(planes)  # [B, 8, H*W]
    holes = ~known
    if solver == 'sor':
        centre = torch.full_like(weights[:, :1], 1.0 - SOR_RELAXATION)
        weights = SOR_RELAXATION * weights
        y = torch.arange(height, device=filled.device)[:, None] % 2
        x = torch.arange(width, device=filled.device)[None, :] % 2
        checker = y * 2 + x
        updates = [holes & (checker == c) for c in range(4)]
    else:
        centre = torch.zeros_like(weights[:, :1])
        updates = [holes]
    window_weights = torch.cat([weights[:, :_WINDOW_CENTRE], centre,
                                weights[:, _WINDOW_CENTRE:]], 1)
    for _ in range(sweeps):
        for update in updates:
            # Every pixel's right-hand side is computed from the values before this group.
            new = (window_weights * _windows3x3(filled)).sum(1).view(b, 1, height, width)
            filled = torch.where(update, new, filled)
    return filled


def _fill_support(mask: torch.Tensor) -> torch.Tensor:
    """
    Select the measured pixels that the coarse levels of :func:`guided_multigrid_fill` see.

    They are those with at least two measured neighbours in their 5x5 window.
    An isolated measured pixel inside a large hole is often a stray return (a stereo camera's
    invalid border band has some). A coarse level would make it a whole known cell and carry
    its depth far into the hole, where the exact solve lets it reach only a few pixels; the
    full-resolution sweeps still hold it fixed. An image whose measured pixels are mostly
    isolated is sparse input, not stray returns, and keeps them all.

    :param mask: Validity [B, 1, H, W], 1 = measured, 0 = hole.
    :return: Validity [B, 1, H, W] of the supporting pixels.
    """
    measured = (mask > 0.5).to(mask.dtype)
    around = F.avg_pool2d(measured, 5, stride=1, padding=2, count_include_pad=True) * 25.0
    support = measured * (around > 2.5).to(mask.dtype)
    sparse = support.sum((1, 2, 3), keepdim=True) < 0.5 * measured.sum((1, 2, 3), keepdim=True)
    return torch.where(sparse, measured, support)


# Over-relaxation factor of the 'sor' solver. The affinities are not symmetric, so SOR's
# convergence for any factor below 2 is not guaranteed: on the simulated test set 1.5 scored
# best, 1.6 already lost accuracy and 1.8 diverged.
SOR_RELAXATION = 1.5


def guided_multigrid_fill(depth: torch.Tensor, mask: torch.Tensor, guide: torch.Tensor,
                          fine_iterations: int, max_iterations: Optional[int] = None,
                          coarsest_side: int = 8, solver: str = 'sor',
                          whole_image: bool = False) -> torch.Tensor:
    """
    Fill holes with a fast approximation of Levin et al.'s colorization fill (no parameters).

    Colorization (the fill that made NYU-Depth V2's filled depth) asks every hole pixel to
    equal the colour-affinity-weighted average of its 8 neighbours, measured pixels fixed, and
    solves the sparse system exactly: seconds per frame. Here the same equations are relaxed
    with sweeps coarse-to-fine (a cascadic multigrid): the guide image, depth and mask are
    average-pooled down to ``coarsest_side`` pixels, the coarsest level starts from
    :func:`pyramid_fill`, and each finer level starts from the upsampled coarser solution and
    runs ``fine_iterations * 2**level`` sweeps (at most ``max_iterations``; level 0 = full
    resolution). Isolated measured pixels constrain only the full-resolution sweeps
    (:func:`_fill_support`). Large holes get the smooth, colour-edge-respecting surface of
    colorization instead of a blurred average.

    The 'sor' solver sweeps the four pixel classes of a 2x2 checkerboard in turn (no pixel has
    an 8-neighbour of its own class, so this is exact Gauss-Seidel) with over-relaxation
    ``SOR_RELAXATION``; 'jacobi' updates every hole at once from the previous sweep, as the
    weights up to the sixth training stage were trained with. At 20 sweeps SOR comes closer to
    the exact solve (simulated test set, fill alone: hole RMSE 0.129 m against 0.135 for Jacobi,
    0.128 exact) and needs fewer coarse sweeps.

    :param depth: Depth [B, 1, H, W] (any unit), 0 in holes.
    :param mask: Validity [B, 1, H, W], 1 = measured, 0 = hole.
    :param guide: Guide image [B, C, H, W] in [0, 1] registered to the depth, whose
        :func:`colour_affinities` weight the neighbours: grey (C = 1) or colour.
    :param fine_iterations: Sweeps at full resolution (``S2MLConfig.fill_iterations``).
    :param max_iterations: Most sweeps at any level (None: 4 x ``fine_iterations`` for 'sor',
        16 x for 'jacobi').
    :param coarsest_side: The pyramid stops when its shorter side is at most this.
    :param solver: 'sor' or 'jacobi' (``S2MLConfig.fill_solver``).
    :param whole_image: Sweep whole images (:func:`_whole_image_sweeps`): the same result with
        no host synchronisation, as CUDA graph capture needs; by default only the holes are
        swept, which is faster everywhere else.
    :return: Filled depth [B, 1, H, W]; 0 only where an image has no valid pixel at all.
    :raises ValueError: For an unknown solver.
    """
    if solver not in FILL_SOLVERS:
        raise ValueError(f'solver must be one of {FILL_SOLVERS}, got {solver!r}')
    if max_iterations is None:
        max_iterations = (4 if solver == 'sor' else 16) * fine_iterations
    support = _fill_support(mask)
    levels = [(depth * mask, mask, guide)]
    if min(mask.shape[-2:]) > coarsest_side:
        levels.append(tuple(F.avg_pool2d(t, 2, ceil_mode=True)
                            for t in (depth * support, support, guide)))
    while min(levels[-1][1].shape[-2:]) > coarsest_side:
        d, m, g = levels[-1]
        levels.append(tuple(F.avg_pool2d(t, 2, ceil_mode=True) for t in (d, m, g)))
    filled = None
    for level in range(len(levels) - 1, -1, -1):
        d, m, g = levels[level]
        # A coarse cell with any measured pixel keeps their average, as in pyramid_fill.
        known = m > 0 if level else m > 0.5
        measured = d / m.clamp_min(1e-6)
        if filled is None:
            filled = pyramid_fill(measured, m, local=True)
        else:
            filled = F.interpolate(filled, size=d.shape[-2:], mode='bilinear',
                                   align_corners=False)
            filled = torch.where(known, measured, filled)
        sweeps = min(max_iterations, fine_iterations * 2 ** level)
        if whole_image:
            filled = _whole_image_sweeps(filled, known, g, sweeps, solver)
            continue
        # Only hole pixels change, so the sweeps gather and update just those (about 5x less
        # work than whole-image sweeps at a typical 20% of holes).
        holes = torch.nonzero(~known.flatten()).squeeze(1)
        if holes.numel() == 0:
            continue
        height, width = d.shape[-2:]
        neighbours = _neighbour_index(height, width, holes)
        weights = colour_affinities(g.transpose(0, 1).reshape(g.shape[1], -1), holes,
                                    neighbours)
        if solver == 'sor':
            # x <- (1 - w) x + w * sum(a x_n) as one weighted gather over [self, neighbours].
            neighbours = torch.cat([holes[:, None], neighbours], 1)
            weights = torch.cat([torch.full_like(weights[:, :1], 1.0 - SOR_RELAXATION),
                                 SOR_RELAXATION * weights], 1)
            pixel = holes % (height * width)
            checker = (pixel // width % 2) * 2 + pixel % width % 2
            members = [checker == c for c in range(4)]
            groups = [(holes[k], neighbours[k], weights[k]) for k in members if k.any()]
        else:
            groups = [(holes, neighbours, weights)]
        # ``filled`` is a tensor made at this level (torch.where or pyramid_fill), not an
        # input, so the sweeps write into it in place through a flat view.
        values = filled.view(-1)
        for _ in range(sweeps):
            # Each group's right-hand side is gathered in full before the group is written.
            for group_holes, group_neighbours, group_weights in groups:
                values[group_holes] = (group_weights * values[group_neighbours]).sum(1)
    return filled


# ITU-R BT.601 luma: the grey level of the colorization fill, as in the NYU toolbox.
LUMA = (0.299, 0.587, 0.114)
# BT.601 chroma (Cb, Cr) and their weight against luma in the 'chroma' guide: surfaces of
# different colour stay apart even where texture and shading make brightness vary as much. 3 was
# chosen on the simulated validation frames (fill alone, hole RMSE 0.117 / 0.113 / 0.112 /
# 0.112 m for weights 1 / 2 / 3 / 4).
CHROMA = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
CHROMA_WEIGHT = 3.0


@functools.lru_cache(maxsize=None)
def _guide_transform(fill_guide: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """
    RGB-to-guide matrix of a grey or chroma guide, made once per dtype and device.

    Built per call it was a host-to-device copy on every frame on CUDA.

    :return: [1, 3] (luma) or [3, 3] (luma and weighted chroma), read only.
    """
    rows = [LUMA] + (list(CHROMA) if fill_guide == 'chroma' else [])
    # A normal tensor even when first asked for under inference_mode, so training may use it.
    with torch.inference_mode(False):
        transform = torch.tensor(rows, dtype=dtype, device=device)
        transform[1:] *= CHROMA_WEIGHT
    return transform


def initial_fill(depth: torch.Tensor, mask: torch.Tensor, rgb: torch.Tensor, kind: str,
                 fill_iterations: int, fill_solver: str = 'sor',
                 fill_guide: str = 'chroma', whole_image: bool = False) -> torch.Tensor:
    """
    Compute the cascade's parameter-free initial depth D_0 (``S2MLConfig.initial_fill``).

    :param depth: Depth [B, 1, H, W] (any unit), 0 in holes.
    :param mask: Validity [B, 1, H, W], 1 = measured, 0 = hole.
    :param rgb: Colour [B, 3, H, W] in [0, 1], registered to the depth (read only by
        'guided_multigrid').
    :param kind: 'guided_multigrid', 'local_pyramid', 'pyramid' or 'zeros' (holes stay 0).
    :param fill_iterations: Full-resolution sweeps of 'guided_multigrid'
        (``S2MLConfig.fill_iterations``).
    :param fill_solver: 'sor' or 'jacobi', the sweeps of 'guided_multigrid'
        (``S2MLConfig.fill_solver``).
    :param fill_guide: 'chroma', 'rgb' or 'gray', the image whose affinities guide
        'guided_multigrid' (``S2MLConfig.fill_guide``).
    :param whole_image: 'guided_multigrid' sweeps whole images, with no host synchronisation
        (see :func:`guided_multigrid_fill`).
    :return: D_0 [B, 1, H, W].
    :raises ValueError: For an unknown guide.
    """
    if kind == 'guided_multigrid':
        if fill_guide not in FILL_GUIDES:
            raise ValueError(f'fill_guide must be one of {FILL_GUIDES}, got {fill_guide!r}')
        guide = rgb.clamp(0.0, 1.0)
        if fill_guide != 'rgb':
            guide = torch.einsum('ck,bkhw->bchw',
                                 _guide_transform(fill_guide, rgb.dtype, rgb.device), guide)
        return guided_multigrid_fill(depth, mask, guide, fill_iterations, solver=fill_solver,
                                     whole_image=whole_image)
    if kind == 'zeros':
        return depth * mask
    return pyramid_fill(depth, mask, local=kind == 'local_pyramid')


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """
    Cut a feature map into non-overlapping square windows.

    :param x: Features [B, H, W, C]; H and W must be multiples of ``window_size``.
    :param window_size: Window side w.
    :return: Windows [B, nW, w*w, C] with nW = (H/w)*(W/w), row-major over windows.
    """
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    # B, H/w, W/w, w, w, C -> B, nW, w*w, C
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, -1, window_size * window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int
                   ) -> torch.Tensor:
    """
    Inverse of :func:`window_partition`.

    :param windows: Windows [B, nW, w*w, C].
    :param window_size: Window side w.
    :param height: Feature map height H.
    :param width: Feature map width W.
    :return: Features [B, H, W, C].
    """
    b, _, _, c = windows.shape
    x = windows.view(b, height // window_size, width // window_size, window_size,
                     window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, height, width, c)


def shifted_window_mask(height: int, width: int, window_size: int, shift: int,
                        device: torch.device) -> torch.Tensor:
    """
    Attention mask that keeps cyclically shifted windows from mixing unrelated regions.

    Computed for the actual (padded) feature size, so any frame size works.

    :return: Additive mask [nW, w*w, w*w], 0 where attention is allowed and -inf-like elsewhere.
    """
    region = torch.zeros(1, height, width, 1, device=device)
    bounds = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            region[:, hs, ws, :] = label
            label += 1
    region_windows = window_partition(region, window_size).squeeze(-1)[0]  # nW, w*w
    diff = region_windows[:, None, :] - region_windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -1e4)


class WindowAttention(nn.Module):
    """
    Multi-head self-attention inside square windows with a relative position bias.

    :param dim: Channels of the tokens.
    :param window_size: Window side w.
    :param num_heads: Attention heads (dim must divide evenly).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                            indexing='ij')).flatten(1)  # 2, w*w
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window_size - 1
        index = relative[..., 0] * (2 * window_size - 1) + relative[..., 1]
        self.register_buffer('relative_position_index', index, persistent=False)

    def position_bias(self) -> torch.Tensor:
        """:return: Bias [heads, w*w, w*w]."""
        n = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Attend within each window.

        :param x: Window tokens [B, nW, N, C] with N = w*w.
        :param mask: Optional additive mask [nW, N, N] for shifted windows.
        :return: Tokens [B, nW, N, C].
        """
        b, nw, n, c = x.shape
        qkv = self.qkv(x).view(b, nw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each B, nW, heads, N, d
        bias = self.position_bias().to(q.dtype)  # heads, N, N
        if mask is not None:
            bias = bias[None] + mask[:, None].to(q.dtype)  # nW, heads, N, N
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


class SwinBlock(nn.Module):
    """
    Swin transformer block: LN -> (shifted) window attention -> residual; LN -> MLP -> residual.

    :param dim: Channels.
    :param num_heads: Attention heads.
    :param window_size: Window side w.
    :param shifted: Shift windows by w/2 (the 'SW' block of a W/SW pair).
    :param mlp_ratio: MLP hidden width / dim.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shifted: bool,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = window_size // 2 if shifted else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self._mask_cache: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def _mask(self, height: int, width: int, device: torch.device) -> Optional[torch.Tensor]:
        # Shifting a map no larger than one window would only wrap it onto itself.
        if self.shift == 0 or (height <= self.window_size and width <= self.window_size):
            return None
        key = (height, width, str(device))
        mask = self._mask_cache.get(key)
        if mask is None:
            mask = shifted_window_mask(height, width, self.window_size, self.shift, device)
            if len(self._mask_cache) > 8:  # frame sizes change rarely; bound the cache anyway
                self._mask_cache.clear()
            self._mask_cache[key] = mask
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Apply the block.

        :param x: Features [B, H, W, C]; H, W multiples of the window size.
        :return: Features [B, H, W, C].
        """
        _, h, w, _ = x.shape
        mask = self._mask(h, w, x.device)
        y = self.norm1(x)
        if mask is not None:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, self.window_size), mask),
                           self.window_size, h, w)
        if mask is not None:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class ResidualConv(nn.Module):
    """Residual 3x3 conv - ReLU - 3x3 conv on NCHW features (SCUNet's conv half)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: [B, C, H, W]. :return: [B, C, H, W]."""
        return x + self.conv2(F.relu(self.conv1(x)))


class SwinConvBlock(nn.Module):
    """
    SCUNet Swin-Conv block: local convolution and global window attention on split channels.

    :param dim: Channels C (split C/2 conv, C/2 transformer).
    :param num_heads: Heads of the transformer half.
    :param window_size: Window side.
    :param shifted: Use shifted windows.
    :param mlp_ratio: MLP ratio of the transformer half.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shifted: bool,
                 mlp_ratio: float) -> None:
        super().__init__()
        half = dim // 2
        self.half = half
        self.conv_in = nn.Conv2d(dim, dim, 1)
        self.conv_branch = ResidualConv(half)
        self.trans_branch = SwinBlock(half, num_heads, window_size, shifted, mlp_ratio)
        self.conv_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: [B, C, H, W], H and W multiples of the window. :return: [B, C, H, W]."""
        local, glob = torch.split(self.conv_in(x), self.half, dim=1)
        local = self.conv_branch(local)
        # B C H W -> B H W C for attention, and back
        glob = self.trans_branch(glob.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv_out(torch.cat([local, glob], dim=1))


class SpectralFusion(nn.Module):
    """
    Spectral fusion module (SpeFM): fuse RGB into depth features in the frequency domain.

    Both streams go through rfft2. The depth amplitude is corrected multiplicatively in the log
    domain by a branch that sees both amplitudes; the depth phase is corrected on the unit circle
    by a separate branch that sees both phases; the spectrum is rebuilt and brought back with
    irfft2. The last layer of each branch starts at zero, so at initialisation the module is
    ``W_o W_d F_d``: no RGB leaks in until training asks for it. The FFT path always runs in
    float32 (half-precision FFTs only support power-of-two sizes and lose dynamic range).

    :param dim: Channels C of both streams.
    :param log_bound: Bound of the log-amplitude correction.
    """

    eps = 1e-8

    def __init__(self, dim: int, log_bound: float = 5.0) -> None:
        super().__init__()
        self.log_bound = log_bound
        self.rgb_proj = nn.Conv2d(dim, dim, 1)
        self.depth_proj = nn.Conv2d(dim, dim, 1)
        self.amp_fuse = nn.Sequential(nn.Conv2d(2 * dim, dim, 1), nn.LeakyReLU(0.1),
                                      nn.Conv2d(dim, dim, 1))
        self.pha_fuse = nn.Sequential(nn.Conv2d(4 * dim, dim, 1), nn.LeakyReLU(0.1),
                                      nn.Conv2d(dim, 2 * dim, 1))
        self.out_proj = nn.Conv2d(dim, dim, 1)
        for branch in (self.amp_fuse, self.pha_fuse):
            nn.init.zeros_(branch[-1].weight)
            nn.init.zeros_(branch[-1].bias)

    def forward(self, rgb_feat: torch.Tensor, depth_feat: torch.Tensor) -> torch.Tensor:
        """
        Fuse the two streams.

        :param rgb_feat: RGB features F_r [B, C, H, W].
        :param depth_feat: Depth features F_d [B, C, H, W].
        :return: Fused spatial features S [B, C, H, W], dtype of ``depth_feat``.
        """
        out_dtype = depth_feat.dtype
        h, w = depth_feat.shape[-2:]
        with torch.autocast(device_type=depth_feat.device.type, enabled=False):
            x_r = torch.fft.rfft2(self.rgb_proj(rgb_feat.float()), norm='ortho')
            x_d = torch.fft.rfft2(self.depth_proj(depth_feat.float()), norm='ortho')
            amp_r, amp_d = x_r.abs(), x_d.abs()
            # Unit phasors instead of angle(): no 2*pi wrap, and smooth gradients.
            cos_r, sin_r = x_r.real / (amp_r + self.eps), x_r.imag / (amp_r + self.eps)
            cos_d, sin_d = x_d.real / (amp_d + self.eps), x_d.imag / (amp_d + self.eps)

            log_gain = self.amp_fuse(torch.cat([torch.log1p(amp_d), torch.log1p(amp_r)], dim=1))
            log_gain = self.log_bound * torch.tanh(log_gain / self.log_bound)
            amp = amp_d * torch.exp(log_gain)

            delta_cos, delta_sin = self.pha_fuse(
                torch.cat([cos_d, sin_d, cos_r, sin_r], dim=1)).chunk(2, dim=1)
            new_cos, new_sin = cos_d + delta_cos, sin_d + delta_sin
            norm = torch.sqrt(new_cos * new_cos + new_sin * new_sin + self.eps)
            spectrum = torch.complex(amp * new_cos / norm, amp * new_sin / norm)
            fused = torch.fft.irfft2(spectrum, s=(h, w), norm='ortho')
            fused = self.out_proj(fused)
        return fused.to(out_dtype)


class SpatialFusion(nn.Module):
    """
    Spatial fusion module (SpaFM): unified embedding of spatial, spectral and RGB features.

    ``E = Conv1x1([F_d, S, F_r])`` followed by Swin-Conv blocks alternating W / SW windows.

    :param dim: Channels C.
    :param num_blocks: Swin-Conv blocks.
    :param num_heads: Heads per block.
    :param window_size: Window side.
    :param mlp_ratio: MLP ratio.
    """

    def __init__(self, dim: int, num_blocks: int, num_heads: int, window_size: int,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3 * dim, dim, 1)
        self.blocks = nn.Sequential(*[
            SwinConvBlock(dim, num_heads, window_size, shifted=bool(i % 2), mlp_ratio=mlp_ratio)
            for i in range(num_blocks)])

    def forward(self, depth_feat: torch.Tensor, spectral_feat: torch.Tensor,
                rgb_feat: torch.Tensor) -> torch.Tensor:
        """:params: [B, C, H, W] each. :return: Z [B, C, H, W]."""
        return self.blocks(self.embed(torch.cat([depth_feat, spectral_feat, rgb_feat], dim=1)))
