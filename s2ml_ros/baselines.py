"""
Classical depth hole-filling baselines, scored with the same metrics as the network.

Every fill has the signature ``fill(rgb, depth_m) -> filled``: ``rgb`` uint8 [H, W, 3] registered
to the depth, ``depth_m`` float32 [H, W] meters with 0 (or non-finite) = hole; the result is
float32 [H, W] meters with the measured pixels unchanged and every hole filled (all zeros if
the input has no valid pixel at all).

- ``nearest``: each hole takes the depth of the nearest valid pixel (Euclidean distance in the
  image). librealsense's ``hole_filling_filter`` fills from the immediate neighbourhood in one
  pass (mode 2 ``nearest_from_around`` picks the neighbour closest to the sensor); this is the
  complete-fill counterpart, and ``mode='left'`` mirrors its mode 0 ``fill_from_left``.
- ``librealsense``: that filter itself, reproduced exactly (mode 2 by default; it can leave
  holes, which then score as zeros).
- ``telea`` / ``navier_stokes``: ``cv2.inpaint`` (Telea 2004; Bertalmio et al. 2001) on the
  depth in uint16 millimetres.
- ``guided``: RGB-guided fill: nearest fill, then repeated guided filtering (He et al., TPAMI
  2013; implemented here with box filters, grey-level guide) that updates only the holes.
- ``colorization``: Levin et al.'s colorization optimisation as in the NYU-Depth V2 toolbox's
  ``fill_depth_colorization``: affinities from grey-level differences in 3x3 windows, a sparse
  linear system solved with scipy.sparse, on a downscaled image when the frame is large.

Pure numpy/scipy/cv2; no ROS and no torch.
"""

from typing import Callable, Dict, Tuple

import cv2
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve


def _prepare(rgb: np.ndarray, depth_m: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f'depth must be [H, W], got shape {depth.shape}')
    if rgb is not None and np.asarray(rgb).shape[:2] != depth.shape:
        raise ValueError(f'rgb shape {np.asarray(rgb).shape} does not match depth {depth.shape}')
    valid = np.isfinite(depth) & (depth > 0)
    return np.where(valid, depth, np.float32(0)), valid


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Grey level in [0, 1], float32 [H, W] (ITU-R BT.601 weights, as MATLAB's rgb2gray)."""
    rgb = np.asarray(rgb, dtype=np.float32) / 255.0
    return (0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]).astype(
        np.float32)


def fill_nearest(rgb: np.ndarray, depth_m: np.ndarray, mode: str = 'nearest') -> np.ndarray:
    """
    Fill holes from valid neighbours (no use of colour).

    :param rgb: Colour, uint8 [H, W, 3] (unused; kept for the common signature).
    :param depth_m: Depth, float32 [H, W] meters, 0 = hole.
    :param mode: 'nearest' (nearest valid pixel in the image) or 'left' (last valid pixel to
        the left on the row, then to the right for holes at the row start).
    :return: Filled depth, float32 [H, W] meters.
    """
    depth, valid = _prepare(rgb, depth_m)
    if valid.all() or not valid.any():
        return depth.copy()
    if mode == 'nearest':
        _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
        return depth[iy, ix].astype(np.float32)
    if mode == 'left':
        h, w = depth.shape
        idx = np.where(valid, np.arange(w)[None, :], 0)
        np.maximum.accumulate(idx, axis=1, out=idx)
        out = depth[np.arange(h)[:, None], idx]
        # Holes before the first valid pixel of a row: take the first valid one to the right.
        ridx = np.where(valid, np.arange(w)[None, :], w - 1)
        ridx = np.minimum.accumulate(ridx[:, ::-1], axis=1)[:, ::-1]
        out = np.where(out > 0, out, depth[np.arange(h)[:, None], ridx])
        # Rows with no valid pixel at all: nearest in the image.
        if not (out > 0).all():
            _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
            out = np.where(out > 0, out, depth[iy, ix])
        return out.astype(np.float32)
    raise ValueError(f"unknown nearest-fill mode {mode!r}; expected 'nearest' or 'left'")


def _segmented_scan(values: np.ndarray, starts: np.ndarray, op: str) -> np.ndarray:
    """Cumulative min or max of a 1-D array restarting at every True in ``starts``."""
    seg = np.cumsum(starts)
    big = 1e7  # larger than any depth range here, so segments never mix
    if op == 'min':
        return np.minimum.accumulate(values - seg * big) + seg * big
    return np.maximum.accumulate(values + seg * big) - seg * big


def fill_librealsense(rgb: np.ndarray, depth_m: np.ndarray,
                      mode: str = 'nearest_from_around') -> np.ndarray:
    """
    Apply librealsense's ``hole_filling_filter``, reproduced exactly (one raster pass).

    Modes as in librealsense: 'fill_from_left' (0: a hole takes its left neighbour, every row),
    'farthest_from_around' (1) and 'nearest_from_around' (2): rows 1..H-2, columns 1..W-1, a
    hole takes the largest / smallest non-zero depth among its upper, upper-left, left,
    lower-left and lower neighbours (upper and left already filled). As there, the nearest
    mode leaves a hole whose upper neighbour is a hole, and the first column (and the first and
    last rows except in 'fill_from_left') are never filled, so holes can remain.

    :param rgb: Colour, uint8 [H, W, 3] (unused).
    :param depth_m: Depth, float32 [H, W] meters, 0 = hole.
    :param mode: 'fill_from_left', 'farthest_from_around' or 'nearest_from_around'.
    :return: Depth after the filter, float32 [H, W] meters (0 where it leaves holes).
    """
    depth, valid = _prepare(rgb, depth_m)
    out = depth.astype(np.float64)
    h, w = out.shape
    if mode == 'fill_from_left':
        for j in range(h):
            row = out[j]
            starts = valid[j].copy()
            starts[0] = True
            out[j] = _segmented_scan(np.where(starts, row, -np.inf), starts, 'max')
        return out.astype(np.float32)
    if mode not in ('farthest_from_around', 'nearest_from_around'):
        raise ValueError(f'unknown librealsense hole-filling mode {mode!r}; expected '
                         "'fill_from_left', 'farthest_from_around' or 'nearest_from_around'")
    cols = np.arange(w)
    for j in range(1, h - 1):
        hole = ~valid[j]
        hole[0] = False  # column 0 is never processed
        if not hole.any():
            continue
        up = out[j - 1]
        up_l = np.concatenate([[0.0], up[:-1]])
        down = out[j + 1]  # not yet processed: original values
        down_l = np.concatenate([[0.0], down[:-1]])
        row = out[j]
        first_col_hole = row[0] == 0
        if mode == 'farthest_from_around':
            cand = np.maximum.reduce([up, up_l, down_l, down])
            starts = ~hole
            vals = np.where(hole, cand, row)
            res = _segmented_scan(vals, starts, 'max')
        else:
            nz = [np.where(q > 0, q, np.inf) for q in (up_l, down_l, down)]
            cand = np.minimum.reduce([up] + nz)
            gate = up > 0
            # A hole under a hole stays a hole and restarts the running minimum after it.
            starts = ~hole | (hole & ~gate)
            if first_col_hole:
                starts[0] = True
            inf_start = (hole & ~gate) | ((cols == 0) & first_col_hole)
            vals = np.where(hole, np.where(gate, cand, np.inf), row)
            vals = np.where(inf_start, np.inf, vals)
            res = _segmented_scan(np.minimum(vals, 1e6), starts, 'min')
            res = np.where((hole & ~gate) | (res >= 1e6), 0.0, res)
        out[j] = np.where(hole, res, row)
    return out.astype(np.float32)


def _inpaint(rgb: np.ndarray, depth_m: np.ndarray, flags: int, radius: float) -> np.ndarray:
    depth, valid = _prepare(rgb, depth_m)
    if valid.all() or not valid.any():
        return depth.copy()
    # cv2.inpaint takes 8-bit, 16-bit unsigned or float32 single-channel images, but on float32
    # depth in meters Telea returns wrong (even negative) values: it assumes an 8-bit-like
    # intensity scale. Millimetres in uint16 (0-65.5 m) behave and keep 1 mm resolution.
    depth_mm = np.round(np.minimum(depth, 65.5) * 1000.0).astype(np.uint16)
    out = cv2.inpaint(depth_mm, (~valid).astype(np.uint8), float(radius), flags)
    return np.where(valid, depth, out.astype(np.float32) / 1000.0).astype(np.float32)


def fill_telea(rgb: np.ndarray, depth_m: np.ndarray, radius: float = 5.0) -> np.ndarray:
    """
    Fill holes with OpenCV's fast-marching inpainting (Telea 2004).

    :param rgb: Colour, uint8 [H, W, 3] (unused).
    :param depth_m: Depth, float32 [H, W] meters, 0 = hole.
    :param radius: Neighbourhood radius, pixels.
    :return: Filled depth, float32 [H, W] meters.
    """
    return _inpaint(rgb, depth_m, cv2.INPAINT_TELEA, radius)


def fill_navier_stokes(rgb: np.ndarray, depth_m: np.ndarray, radius: float = 5.0) -> np.ndarray:
    """
    Fill holes with OpenCV's Navier-Stokes inpainting (Bertalmio et al. 2001).

    :param rgb: Colour, uint8 [H, W, 3] (unused).
    :param depth_m: Depth, float32 [H, W] meters, 0 = hole.
    :param radius: Neighbourhood radius, pixels.
    :return: Filled depth, float32 [H, W] meters.
    """
    return _inpaint(rgb, depth_m, cv2.INPAINT_NS, radius)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """
    Grey-guide guided filter (He, Sun, Tang, TPAMI 2013) with O(1) box filters.

    :param guide: Guide image, float32 [H, W] (e.g. grey level in [0, 1]).
    :param src: Image to filter, float32 [H, W].
    :param radius: Window radius, pixels (window side 2 r + 1).
    :param eps: Regularisation, in squared guide units; larger = smoother.
    :return: Filtered image, float32 [H, W].
    """
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, k, normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return (box(a) * guide + box(b)).astype(np.float32)


def fill_guided(rgb: np.ndarray, depth_m: np.ndarray, radius: int = 8, eps: float = 1e-4,
                iterations: int = 12) -> np.ndarray:
    """
    RGB-guided fill: nearest fill, then guided filtering that only rewrites the holes.

    Each pass filters the current estimate with the grey image as guide and keeps measured
    pixels, so edges of the colour image shape the fill while the measurements anchor it.

    :param rgb: Colour, uint8 [H, W, 3].
    :param depth_m: Depth, float32 [H, W] meters, 0 = hole.
    :param radius: Guided-filter window radius, pixels.
    :param eps: Guided-filter regularisation (grey level in [0, 1] squared).
    :param iterations: Number of filtering passes.
    :return: Filled depth, float32 [H, W] meters.
    """
    depth, valid = _prepare(rgb, depth_m)
    if valid.all() or not valid.any():
        return depth.copy()
    guide = _gray(rgb)
    current = fill_nearest(rgb, depth)
    for _ in range(iterations):
        current = np.where(valid, depth, guided_filter(guide, current, radius, eps))
    return np.maximum(current, 0).astype(np.float32)


def _downscale_masked(depth: np.ndarray, valid: np.ndarray, size: Tuple[int, int]
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """Area-average only the valid pixels; a low-res pixel is valid if half its area was."""
    w, h = size
    num = cv2.resize(depth * valid, (w, h), interpolation=cv2.INTER_AREA)
    den = cv2.resize(valid.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    ok = den >= 0.5
    return np.where(ok, num / np.maximum(den, 1e-6), 0).astype(np.float32), ok


def fill_colorization(rgb: np.ndarray, depth_m: np.ndarray, alpha: float = 1.0,
                      max_pixels: int = 320 * 240) -> np.ndarray:
    """
    Levin et al.'s colorization fill, as the NYU-Depth V2 toolbox's fill_depth_colorization.

    Solves (A + G) x = G d, where A = I - W with W the normalised 3x3 grey-level affinities
    w_rs = exp(-(Y_r - Y_s)^2 / sigma_r) and G = alpha * diag(known). Frames larger than
    ``max_pixels`` are solved at a lower resolution and upsampled (bilinear); measured pixels
    keep their values.

    :param rgb: Colour, uint8 [H, W, 3].
    :param depth_m: Depth, float32 [H, W] meters, 0 = hole.
    :param alpha: Weight of the data term on measured pixels.
    :param max_pixels: Largest number of unknowns to solve for directly.
    :return: Filled depth, float32 [H, W] meters.
    """
    depth, valid = _prepare(rgb, depth_m)
    if valid.all() or not valid.any():
        return depth.copy()
    h, w = depth.shape
    gray = _gray(rgb)
    scale = min(1.0, float(np.sqrt(max_pixels / (h * w))))
    if scale < 1.0:
        sw, sh = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
        d_s, v_s = _downscale_masked(depth, valid, (sw, sh))
        g_s = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA)
        if not v_s.any():
            d_s, v_s = _downscale_masked(depth, valid, (sw, sh))
            v_s = d_s > 0
        low = _colorization_solve(g_s, d_s, v_s, alpha)
        up = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.where(valid, depth, up).astype(np.float32)
    return np.where(valid, depth, _colorization_solve(gray, depth, valid, alpha)).astype(
        np.float32)


def _colorization_solve(gray: np.ndarray, depth: np.ndarray, known: np.ndarray,
                        alpha: float) -> np.ndarray:
    h, w = depth.shape
    n = h * w
    max_d = float(depth[known].max())
    d = np.clip(depth / max_d, 0, 1).ravel().astype(np.float64)
    g = gray.astype(np.float64)
    idx = np.arange(n).reshape(h, w)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    pad_g = np.pad(g, 1, mode='edge')
    pad_idx = np.pad(idx, 1, mode='constant', constant_values=-1)
    neigh_g = np.stack([pad_g[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])
    neigh_i = np.stack([pad_idx[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])
    inside = neigh_i >= 0
    count = inside.sum(axis=0)
    # Window variance over the neighbours and the centre (toolbox: c_var, csig = 0.6 c_var).
    s1 = np.where(inside, neigh_g, 0).sum(axis=0) + g
    s2 = np.where(inside, neigh_g ** 2, 0).sum(axis=0) + g ** 2
    mean = s1 / (count + 1)
    c_var = s2 / (count + 1) - mean ** 2
    diff2 = np.where(inside, (neigh_g - g[None]) ** 2, np.inf)
    mgv = diff2.min(axis=0)
    csig = np.maximum(np.maximum(0.6 * c_var, -mgv / np.log(0.01)), 2e-6)
    wts = np.where(inside, np.exp(-np.where(inside, diff2, 0) / csig[None]), 0)
    wts /= wts.sum(axis=0, keepdims=True)
    rows = np.broadcast_to(idx[None], neigh_i.shape)[inside]
    cols = neigh_i[inside]
    vals = -wts[inside]
    a = sparse.csr_matrix((np.concatenate([vals, np.ones(n)]),
                           (np.concatenate([rows, np.arange(n)]),
                            np.concatenate([cols, np.arange(n)]))), shape=(n, n))
    g_diag = alpha * known.ravel().astype(np.float64)
    x = spsolve((a + sparse.diags(g_diag)).tocsc(), g_diag * d)
    return (np.asarray(x).reshape(h, w) * max_d).astype(np.float32)


BASELINES: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    'nearest': fill_nearest,
    'librealsense': fill_librealsense,
    'telea': fill_telea,
    'navier_stokes': fill_navier_stokes,
    'guided': fill_guided,
    'colorization': fill_colorization,
}
