"""
Offline scoring shared by the bag evaluator and the RealSense recording evaluator.

Two protocols:

- **ground truth**: a ground-truth depth image exists for the frame; every method completes the
  real raw depth and is scored on all valid ground-truth pixels and on the raw holes.
- **hidden pixels** (no ground truth, the usual case on a robot): valid raw pixels are hidden
  with *real hole shapes* taken from other frames of the same recording and moved by a random
  offset (:class:`HolePlanter`); every method completes the depth with those pixels removed and
  is scored against the measurement it did not see. The hidden pixels are the ``hole_``
  figures; the all-pixel figures include the measured pixels kept as they are.

Metrics are :class:`s2ml_ros.metrics.DepthMetricAccumulator` (the training metrics, one
implementation). A method may leave pixels empty (0 or NaN; librealsense's spatial and temporal
filters do); those pixels are not scored and the share of scored pixels it filled is reported as
``coverage``. Error by distance uses one accumulator per ground-truth distance bin.

Pure numpy (+ torch through the metrics); no ROS.
"""

from dataclasses import dataclass, field
import hashlib
import math
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from s2ml_ros.metrics import compute_depth_metrics, DepthMetricAccumulator

#: Ground-truth distance bins of the error-by-distance breakdown, meters.
DISTANCE_BINS_M = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, math.inf)
#: Frame metrics kept per frame and method in the report.
FRAME_METRICS = ('rmse', 'mae', 'rel', 'delta1')


def shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """
    Move a mask by whole pixels; what leaves the image is lost, what enters is False.

    :param mask: bool [H, W].
    :param dy: Rows down (negative: up).
    :param dx: Columns right (negative: left).
    :return: The moved mask, bool [H, W].
    """
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


class HolePlanter:
    """
    Hide valid depth pixels with hole shapes moved from other frames.

    The hole masks of the last ``bank_size`` frames are kept. For a frame, the mask of an
    earlier frame (the frame's own mask for the first one) is shifted by a random offset of up
    to a quarter of the image, and the valid pixels under it are hidden. Offsets are redrawn up
    to ``tries`` times until at least ``min_fraction`` of the valid pixels are hidden.

    :param seed: Seed of the offsets and of the choice of source frame.
    :param bank_size: Earlier hole masks to choose from.
    :param min_fraction: Smallest share of valid pixels to hide.
    :param tries: Offsets tried per frame.
    """

    def __init__(self, seed: int = 0, bank_size: int = 8, min_fraction: float = 0.02,
                 tries: int = 8) -> None:
        self._rng = np.random.default_rng(seed)
        self._bank: List[np.ndarray] = []
        self.bank_size = int(bank_size)
        self.min_fraction = float(min_fraction)
        self.tries = int(tries)

    def plant(self, depth_m: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """
        Hide pixels of one frame (call in frame order).

        :param depth_m: Measured depth, float32 [H, W] meters, 0 = hole.
        :return: (depth with the hidden pixels set to 0, float32 [H, W]; hidden mask, bool
            [H, W]). The mask is empty when the recording has no holes at all.
        """
        depth = np.asarray(depth_m, dtype=np.float32)
        valid = np.isfinite(depth) & (depth > 0)
        holes = ~valid
        self._bank = [m for m in self._bank if m.shape == holes.shape]
        source = self._bank[self._rng.integers(len(self._bank))] if self._bank else holes
        h, w = holes.shape
        hidden = np.zeros_like(valid)
        n_valid = max(int(valid.sum()), 1)
        if source.any():
            for _ in range(self.tries):
                dy = int(self._rng.integers(-(h // 4), h // 4 + 1))
                dx = int(self._rng.integers(-(w // 4), w // 4 + 1))
                candidate = shift_mask(source, dy, dx) & valid
                if candidate.sum() > hidden.sum():
                    hidden = candidate
                if hidden.sum() >= self.min_fraction * n_valid:
                    break
        self._bank.append(holes)
        del self._bank[:-self.bank_size]
        return np.where(hidden, np.float32(0.0), depth), hidden


def _valid(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


@dataclass
class _MethodState:
    overall: DepthMetricAccumulator = field(default_factory=DepthMetricAccumulator)
    bins: List[DepthMetricAccumulator] = field(default_factory=list)
    latencies_s: List[float] = field(default_factory=list)
    scored: int = 0
    filled: int = 0


class Evaluation:
    """
    Accumulate the scores of several methods over the frames of one recording.

    :param methods: Method names, in report order (the first is the reference, usually S2ML).
    :param protocol: 'ground_truth' or 'hidden_pixels'.
    :param keep_maps: How many frames' error maps to keep for the report.
    :param map_every: Keep the error maps of every n-th frame (starting at frame 0).
    """

    def __init__(self, methods: Sequence[str], protocol: str, keep_maps: int = 3,
                 map_every: int = 50) -> None:
        if protocol not in ('ground_truth', 'hidden_pixels'):
            raise ValueError(f'unknown protocol {protocol!r}')
        self.methods = list(methods)
        self.protocol = protocol
        self.keep_maps = int(keep_maps)
        self.map_every = max(int(map_every), 1)
        self._state = {m: _MethodState(bins=[DepthMetricAccumulator()
                                             for _ in DISTANCE_BINS_M[:-1]])
                       for m in self.methods}
        self.frames: List[Dict[str, Any]] = []
        self.maps: List[Dict[str, Any]] = []

    def add_frame(self, index: int, stamp_ns: int, rgb: np.ndarray, raw_m: np.ndarray,
                  input_m: np.ndarray, target_m: np.ndarray,
                  predictions: Dict[str, Tuple[np.ndarray, float]],
                  extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """
        Score every method on one frame.

        :param index: Frame number.
        :param stamp_ns: Frame stamp, ns.
        :param rgb: Colour, uint8 [H, W, 3] (kept for the error-map figure only).
        :param raw_m: Measured depth before any hiding, float32 [H, W] meters, 0 = hole.
        :param input_m: Depth the methods saw, float32 [H, W] meters, 0 = hole.
        :param target_m: Depth to score against (ground truth, or ``raw_m`` for hidden pixels),
            float32 [H, W] meters, 0 or NaN = not scored.
        :param predictions: Method -> (depth float32 [H, W] meters, 0/NaN = not filled;
            latency in seconds).
        :param extra: More per-frame fields for the report.
        :return: The frame record (also appended to :attr:`frames`).
        """
        input_valid = _valid(input_m)
        target_valid = _valid(target_m)
        scored_holes = target_valid & ~input_valid
        record: Dict[str, Any] = {
            'index': int(index), 'stamp_ns': int(stamp_ns),
            'hole_fraction': float(1.0 - _valid(raw_m).mean()),
            'input_hole_fraction': float(1.0 - input_valid.mean()),
            'scored_hole_pixels': int(scored_holes.sum()),
            'methods': {},
        }
        record.update(extra or {})
        errors = {}
        for name in self.methods:
            pred, latency = predictions[name]
            pred = np.asarray(pred, dtype=np.float32)
            filled = _valid(pred)
            state = self._state[name]
            state.overall.update(pred, target_m, filled, input_m)
            for k, acc in enumerate(state.bins):
                lo, hi = DISTANCE_BINS_M[k], DISTANCE_BINS_M[k + 1]
                in_bin = filled & scored_holes & (target_m >= lo) & (target_m < hi)
                if in_bin.any():
                    acc.update(pred, target_m, in_bin)
            state.latencies_s.append(float(latency))
            state.scored += int(scored_holes.sum())
            state.filled += int((scored_holes & filled).sum())
            frame_metrics = compute_depth_metrics(pred, target_m, filled, input_m)
            record['methods'][name] = {
                'latency_ms': 1000.0 * float(latency),
                'coverage': _ratio(int((scored_holes & filled).sum()), int(scored_holes.sum())),
                **{m: _clean(frame_metrics.get('hole_' + m)) for m in FRAME_METRICS},
                **{'all_' + m: _clean(frame_metrics.get(m)) for m in FRAME_METRICS},
            }
            errors[name] = np.where(filled & scored_holes, np.abs(pred - target_m), np.nan)
        self.frames.append(record)
        if len(self.maps) < self.keep_maps and index % self.map_every == 0:
            self.maps.append({'index': int(index), 'rgb': rgb, 'input': input_m,
                              'target': np.where(target_valid, target_m, np.nan),
                              'scored': scored_holes, 'errors': errors})
        return record

    def summary(self) -> Dict[str, Any]:
        """
        Overall figures per method.

        :return: {method: {metric: value, ..., 'coverage', 'latency_ms': {...}}} where the
            unprefixed metrics are on the holes the method had to fill (``hole_`` figures of the
            accumulator) and ``all_*`` on every scored pixel.
        """
        out = {}
        for name in self.methods:
            state = self._state[name]
            m = state.overall.compute()
            lat = np.asarray(state.latencies_s) * 1000.0
            entry: Dict[str, Any] = {k[len('hole_'):]: _clean(v) for k, v in m.items()
                                     if k.startswith('hole_')}
            entry.update({'all_' + k: _clean(v) for k, v in m.items()
                          if not k.startswith('hole_')})
            entry['coverage'] = _ratio(state.filled, state.scored)
            entry['latency_ms'] = _latency_stats(lat)
            out[name] = entry
        return out

    def error_by_distance(self) -> Dict[str, List[Dict[str, Any]]]:
        """:return: {method: [{'range_m': [lo, hi], 'mae', 'rmse', 'rel', 'pixels'}, ...]}."""
        out = {}
        for name in self.methods:
            rows = []
            for k, acc in enumerate(self._state[name].bins):
                m = acc.compute()
                hi = DISTANCE_BINS_M[k + 1]
                rows.append({'range_m': [DISTANCE_BINS_M[k], None if math.isinf(hi) else hi],
                             'mae': _clean(m['mae_pooled']), 'rmse': _clean(m['rmse_pooled']),
                             'rel': _clean(m['rel']), 'pixels': int(m['pixels'])})
            out[name] = rows
        return out


def _ratio(num: int, den: int) -> Optional[float]:
    return float(num) / den if den else None


def _clean(value: Any) -> Optional[float]:
    """:return: A JSON-safe float (None for NaN / inf / missing)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _latency_stats(ms: np.ndarray) -> Dict[str, Optional[float]]:
    if ms.size == 0:
        return {'mean': None, 'p50': None, 'p90': None, 'max': None, 'count': 0}
    return {'mean': float(ms.mean()), 'p50': float(np.percentile(ms, 50)),
            'p90': float(np.percentile(ms, 90)), 'max': float(ms.max()), 'count': int(ms.size)}


class OutputError(ValueError):
    """An output folder that cannot be written, or outputs that exist already."""


class StagedOutput:
    """
    Write outputs under a temporary name in the output folder, publish them all at the end.

    Nothing with a final name appears before :meth:`commit`; :meth:`abort` (or leaving a
    ``with`` block with an exception) removes everything staged, so a failed run never leaves a
    partial output that looks complete.

    :param folder: Output folder (created if missing).
    :param names: File or folder names that will be published in it.
    :param overwrite: Replace existing outputs of the same names at commit time.
    :raises OutputError: When an output exists and ``overwrite`` is False.
    """

    def __init__(self, folder: str, names: Sequence[str], overwrite: bool = False) -> None:
        self.folder = Path(folder)
        self.names = list(names)
        self.overwrite = overwrite
        existing = [n for n in self.names if (self.folder / n).exists()]
        if existing and not overwrite:
            raise OutputError(
                f'{self.folder}: {", ".join(existing)} already exist; choose another output '
                'folder or pass --overwrite')
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.stage = Path(tempfile.mkdtemp(prefix='.s2ml-partial-', dir=self.folder))
        except OSError as exc:
            raise OutputError(f'{self.folder}: cannot create the output folder: {exc}') from exc
        self.committed = False

    def path(self, name: str) -> Path:
        """:return: Where to write output ``name`` until the commit."""
        if name not in self.names:
            raise OutputError(f'{name} is not one of the staged outputs {self.names}')
        return self.stage / name

    def commit(self) -> Dict[str, str]:
        """
        Move every staged output to its final name.

        :return: name -> final path, for the outputs that were written.
        """
        final = {}
        for name in self.names:
            src = self.stage / name
            if not src.exists():
                continue
            dst = self.folder / name
            if dst.exists():
                if dst.is_dir():
                    shutil.rmtree(dst)
                else:
                    dst.unlink()
            os.replace(src, dst)
            final[name] = str(dst)
        shutil.rmtree(self.stage, ignore_errors=True)
        self.committed = True
        return final

    def abort(self) -> None:
        """Remove everything staged."""
        shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self) -> 'StagedOutput':
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


def path_sha256(path: str) -> str:
    """
    SHA-256 of a file, or of every file of a folder (relative names and bytes, sorted).

    :param path: File or folder.
    :return: Hex digest.
    """
    root = Path(path)
    digest = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob('*') if p.is_file())
    for f in files:
        if root.is_dir():
            digest.update(str(f.relative_to(root)).encode() + b'\0')
        with open(f, 'rb') as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b''):
                digest.update(chunk)
    return digest.hexdigest()
