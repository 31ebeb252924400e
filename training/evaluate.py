"""
Evaluate S2ML checkpoints and the classical baselines with the same metrics on the same frames.

Examples, from the repository root::

    # the fixed simulated test set (seeds the training never uses)
    python -m training.evaluate --data sim --num-samples 100 \
        --checkpoint runs/sim_tiny/best.safetensors
    # real frames without ground truth: valid pixels are hidden with the hole pattern of
    # another frame and scored there (the 'hole_' figures)
    python -m training.evaluate --data folder --data-path /data/realdata/nyu_slambook2 \
        /data/realdata/tum_slambook --checkpoint my.safetensors --output results/real.json
    # NYU-Depth V2 test split
    python -m training.evaluate --data nyu --data-path nyu_depth_v2_labeled.mat \
        --border-crop 45 15 45 40 --checkpoint best.safetensors

Methods: ``raw`` (the input itself, holes stay 0), every baseline of
:mod:`s2ml_ros.baselines`, the network's parameter-free initial fills (``--initial-fills``,
'fill:<name>') and each ``--checkpoint`` (final stage). Metrics come from
:mod:`s2ml_ros.metrics` (per-image means, pooled PSNR beside them), on all valid ground-truth
pixels and on the input's hole pixels.
"""

import argparse
from collections import Counter
import csv
import json
import math
from pathlib import Path
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from s2ml_ros.baselines import BASELINES
from s2ml_ros.metrics import DepthMetricAccumulator
from s2ml_ros.model.config import FILL_GUIDES, FILL_SOLVERS, INITIAL_FILLS, S2MLConfig
from s2ml_ros.offline_eval import HolePlanter
from s2ml_ros.pipeline import (DepthCompletionPredictor, estimate_colour_offset,
                               initial_fill_image, shift_image)
from s2ml_ros.simulation import check_share
from tqdm import tqdm

from . import datasets as ds
from .transforms import BorderCrop, Compose, Resize, Sample

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Columns of the printed table.
_SHOWN = ('psnr', 'psnr_pooled', 'rmse', 'mae', 'rel', 'delta1', 'hole_psnr', 'hole_rmse',
          'hole_mae', 'hole_delta1')


DEGRADATIONS = ('none', 'noise10', 'noise25', 'noise50', 'blur1', 'blur2', 'blur3', 'lowlight',
                'jpeg20', 'outdoor', 'shift1', 'shift2', 'shift4')


def degrade(rgb: np.ndarray, depth: np.ndarray, kind: str, rng: np.random.Generator
            ) -> Tuple[np.ndarray, np.ndarray]:
    """
    Corrupt the inputs for the robustness tests (levels chosen here; the paper's are unknown).

    :param rgb: Colour, uint8 [H, W, 3].
    :param depth: Raw depth, float32 [H, W] meters, 0 = hole.
    :param kind: 'none'; 'noiseS' (Gaussian colour noise, sigma S / 255); 'blurS' (Gaussian
        blur, sigma S px); 'lowlight' (x0.3 intensity, gamma 2, noise sigma 10); 'jpeg20'
        (JPEG quality 20); 'outdoor' (50-80% of the valid depth removed in large blobs, as
        sunlight washes out the pattern, and depth beyond 4.5 m dropped); 'shiftS' (colour
        moved S px to the right of the depth, edge pixels repeated: a registration error, as
        an off calibration or an unregistered stream gives).
    :param rng: Random generator.
    :return: (colour, depth) after the corruption.
    """
    if kind == 'none':
        return rgb, depth
    img = rgb.astype(np.float32)
    if kind.startswith('noise'):
        img += rng.normal(0, float(kind[5:]), img.shape)
    elif kind.startswith('blur'):
        img = cv2.GaussianBlur(img, (0, 0), float(kind[4:]))
    elif kind == 'lowlight':
        img = 255 * (0.3 * img / 255) ** 2 + rng.normal(0, 10, img.shape)
    elif kind == 'jpeg20':
        ok, buf = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    elif kind.startswith('shift'):
        # Along x, the baseline axis of most RGB-D heads, where calibration errors show most.
        img = shift_image(img, 0, int(kind[5:]))
    elif kind == 'outdoor':
        h, w = depth.shape
        coarse = rng.standard_normal((max(2, h // 32), max(2, w // 32))).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        keep = field > np.quantile(field, rng.uniform(0.5, 0.8))
        depth = np.where(keep & (depth < 4.5), depth, np.float32(0)).astype(np.float32)
        return rgb, depth
    else:
        raise ValueError(f'unknown degradation {kind!r}; choose from {DEGRADATIONS}')
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), depth


def model_methods(path: str, device: str, keep_measured: bool, precision: str = 'fp32',
                  stages: bool = False, label: Optional[str] = None,
                  flip_average: bool = False) -> Dict[str, Method]:
    """
    Wrap a checkpoint in the node's predictor, so offline and live results share one path.

    :param stages: Also score every cascade stage ('s2ml:<name>@<k>', k = 1..K).
    :param label: <name> in the method names (default: the file name without suffix).
    :param flip_average: Average the frame's and its mirror image's results
        (:class:`s2ml_ros.pipeline.DepthCompletionPredictor`).
    :return: name -> fill function; 's2ml:<name>' is the final stage.
    """
    predictor = DepthCompletionPredictor.from_checkpoint(
        path, device=device, precision=precision, keep_measured=keep_measured,
        flip_average=flip_average)
    name = f's2ml:{label or Path(path).stem}'
    if not stages:
        return {name: predictor.predict}
    last: Dict[str, object] = {}

    def stage(k: int) -> Method:
        def run(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
            # One forward pass per frame serves every stage (the inputs are kept referenced,
            # so identity comparison is safe).
            if last.get('rgb') is not rgb or last.get('depth') is not depth:
                last.update(rgb=rgb, depth=depth, out=predictor.predict_stages(rgb, depth))
            out = last['out'][k]
            if keep_measured:
                out = np.where(depth > 0, depth, out).astype(np.float32)
            return out
        return run

    num = predictor.model.config.num_pairs
    methods = {f'{name}@{k + 1}': stage(k) for k in range(num)}
    methods[name] = stage(num - 1)
    return methods


def initial_fill_method(name: str, fill_iterations: int = S2MLConfig.fill_iterations,
                        fill_solver: str = S2MLConfig.fill_solver,
                        fill_guide: str = S2MLConfig.fill_guide) -> Method:
    """
    Wrap one of the network's parameter-free initial fills D_0 as a method ('fill:<name>').

    Scored beside the checkpoint, it shows what the trained cascade adds to its own start.

    :param name: One of :data:`s2ml_ros.model.config.INITIAL_FILLS` except 'zeros'.
    :param fill_iterations: Full-resolution sweeps of 'guided_multigrid'.
    :param fill_solver: Sweeps of 'guided_multigrid': 'sor' or 'jacobi'.
    :param fill_guide: Guide image of 'guided_multigrid': 'chroma', 'rgb' or 'gray'.
    """
    if name not in INITIAL_FILLS or name == 'zeros':
        raise SystemExit(f'unknown initial fill {name!r}; choose from '
                         f'{[f for f in INITIAL_FILLS if f != "zeros"]}')

    def run(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
        return initial_fill_image(rgb, depth, name, fill_iterations, fill_solver, fill_guide)
    return run


def registered_colour_offsets() -> Callable[[np.ndarray, np.ndarray], Tuple[int, int]]:
    """:return: ``(rgb, raw) -> (dy, dx)``, the colour offset estimated from one frame."""
    fill = initial_fill_method('guided_multigrid')

    def estimate(rgb: np.ndarray, raw: np.ndarray) -> Tuple[int, int]:
        # Planter seeds apart from the evaluation's own draws (0, 1, ...).
        found = estimate_colour_offset(rgb, raw, fill, seed=1000)
        return found.dy, found.dx
    return estimate


def build_frames(args: argparse.Namespace) -> List[Tuple[str, ds._FrameDataset]]:
    """:return: (name, dataset) pairs to evaluate on."""
    pre = []
    if args.border_crop:
        pre.append(BorderCrop(*args.border_crop))
    if args.resize:
        pre.append(Resize(*args.resize))
    tf = Compose(pre) if pre else None
    if args.data == 'sim':
        w, h = args.sim_size
        return [('sim_test', ds.SimulatedRgbd(args.num_samples, w, h, args.sensors, 'test',
                                              transform=tf, level_views=args.level_views,
                                              clutter=args.clutter))]
    if not args.data_path:
        raise SystemExit(f'--data-path is required for --data {args.data}')
    if args.data == 'nyu':
        return [('nyu_test', ds.NyuDepthV2Labeled(args.data_path[0], 'test', args.nyu_splits,
                                                  tf))]
    if args.data == 'sun':
        return [('sun', ds.SunRgbd(args.data_path[0], args.sun_list, tf))]
    return [(Path(p).name, ds.RgbdFolder(p, transform=tf)) for p in args.data_path]


def evaluate_methods(frames: Sequence[Sample], methods: Dict[str, Method],
                     hide_holes: bool, quiet: bool = True, degradation: str = 'none',
                     hide_draws: int = 1, hide_seed: int = 0,
                     colour_offsets: Optional[Callable[[np.ndarray, np.ndarray],
                                                       Tuple[int, int]]] = None,
                     offsets_seen: Optional[List[Tuple[int, int]]] = None
                     ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
    """
    Score every method on every frame.

    :param frames: Samples with 'rgb', 'depth' (raw input) and 'gt'.
    :param methods: name -> fill function.
    :param hide_holes: Hide valid pixels under real hole shapes moved from other frames
        (:class:`s2ml_ros.offline_eval.HolePlanter`, the bag evaluator's protocol) and use the
        original raw depth as ground truth (for frames without ground truth).
    :param quiet: No progress bar.
    :param degradation: Input corruption applied after hiding (see :func:`degrade`); the
        ground truth is never corrupted.
    :param hide_draws: With ``hide_holes``, score every frame this many times, each time under
        other moved hole shapes (planter seeds ``hide_seed``, ``hide_seed + 1``, ...): one draw
        of a few frames is a noisy estimate.
    :param hide_seed: Planter seed of the first draw.
    :param colour_offsets: ``(rgb, raw) -> (dy, dx)``: the colour offset of each frame (and
        draw), estimated from the method inputs alone; every method then gets the colour moved
        by it (registration, :mod:`s2ml_ros.registration`). None: colour as given.
    :param offsets_seen: With ``colour_offsets``, each estimate is appended here.
    :return: (name -> metrics over all draws, name -> seconds per frame and draw). With
        several draws each method's metrics also hold 'hole_rmse_draws', the hole RMSE of
        each draw (a list), and 'hole_rmse_sd', their sample standard deviation.
    """
    if hide_draws < 1:
        raise ValueError(f'hide_draws must be >= 1, got {hide_draws}')
    draws = hide_draws if hide_holes else 1
    accs = {name: [DepthMetricAccumulator() for _ in range(draws)] for name in methods}
    times = dict.fromkeys(methods, 0.0)
    n = len(frames)
    for d in range(draws):
        planter = HolePlanter(seed=hide_seed + d)
        for i in tqdm(range(n), disable=quiet, desc='frames' if draws == 1 else f'draw {d}',
                      file=sys.stderr):
            s = frames[i]
            rgb, raw, gt = s['rgb'], s['depth'], s['gt']
            if hide_holes:
                raw, _ = planter.plant(s['depth'])
                gt = s['depth']
            rgb, raw = degrade(rgb, raw, degradation,
                               np.random.default_rng([7, i] if d == 0 else [7, d, i]))
            if colour_offsets is not None:
                offset = colour_offsets(rgb, raw)
                if offsets_seen is not None:
                    offsets_seen.append(offset)
                rgb = shift_image(rgb, *offset)
            for name, fill in methods.items():
                t0 = time.perf_counter()
                pred = fill(rgb, raw)
                times[name] += time.perf_counter() - t0
                accs[name][d].update(pred, gt, raw=raw)
    results = {}
    for name, per_draw in accs.items():
        total = DepthMetricAccumulator()
        for acc in per_draw:
            total.totals += acc.totals
        results[name] = total.compute()
        if draws > 1:
            rmses = [acc.compute().get('hole_rmse', math.nan) for acc in per_draw]
            results[name]['hole_rmse_draws'] = rmses
            results[name]['hole_rmse_sd'] = float(np.std(rmses, ddof=1))
    return results, {k: v / max(n * draws, 1) for k, v in times.items()}


class _Frames:
    """Sequence view of a dataset's numpy samples, loaded on access."""

    def __init__(self, dataset: ds._FrameDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset.sample(index)


def format_table(results: Dict[str, Dict[str, float]], times: Dict[str, float]) -> str:
    """:return: A Markdown table of the main figures, one row per method."""
    head = '| method | ' + ' | '.join(_SHOWN) + ' | ms/frame |'
    lines = [head, '|' + '---|' * (len(_SHOWN) + 2)]
    for name, m in results.items():
        cells = [f'{m.get(k, math.nan):.4f}' if 'psnr' not in k else f'{m.get(k, math.nan):.2f}'
                 for k in _SHOWN]
        lines.append(f'| {name} | ' + ' | '.join(cells) + f' | {1e3 * times[name]:.1f} |')
    return '\n'.join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    """:return: The command-line parser."""
    p = argparse.ArgumentParser(description='Evaluate S2ML checkpoints and classical baselines')
    p.add_argument('--data', default='sim', choices=['sim', 'nyu', 'sun', 'folder'],
                   help='evaluation frames')
    p.add_argument('--data-path', nargs='+', default=None, help='file or folder(s)')
    p.add_argument('--nyu-splits', default=None, help='splits.mat of NYU-Depth V2')
    p.add_argument('--sun-list', default=None, help='SUN RGB-D test frame list')
    p.add_argument('--num-samples', type=int, default=100, help='simulated test frames')
    p.add_argument('--level-views', type=float, default=0.0,
                   help='share of simulated test frames whose camera is held about level '
                   'instead of looking down (0: the fixed test set as published)')
    p.add_argument('--clutter', type=float, default=0.0,
                   help='share of simulated test rooms crowded with objects on furniture tops, '
                   'the floor and wall shelves (0: the fixed test set as published)')
    p.add_argument('--sim-size', type=int, nargs=2, default=[320, 240], metavar=('W', 'H'),
                   help='simulated frame size')
    p.add_argument('--sensors', nargs='+', default=['structured_light'],
                   help='simulated sensor presets, cycled')
    p.add_argument('--border-crop', type=int, nargs=4, default=None,
                   metavar=('TOP', 'BOTTOM', 'LEFT', 'RIGHT'), help='cut a border first')
    p.add_argument('--resize', type=int, nargs=2, default=None, metavar=('W', 'H'),
                   help='resize frames to this size')
    p.add_argument('--checkpoint', nargs='*', default=[], help='S2ML checkpoints to score')
    p.add_argument('--baselines', nargs='*', default=['raw'] + list(BASELINES),
                   help=f'baselines to score: raw and any of {list(BASELINES)}')
    p.add_argument('--initial-fills', nargs='*', default=[],
                   help="also score the network's parameter-free initial fills alone: any of "
                        f'{[f for f in INITIAL_FILLS if f != "zeros"]}')
    p.add_argument('--fill-iterations', type=int, default=S2MLConfig.fill_iterations,
                   help='full-resolution sweeps of the guided_multigrid initial fill '
                        '(default: the model default)')
    p.add_argument('--fill-solver', default=S2MLConfig.fill_solver, choices=list(FILL_SOLVERS),
                   help='sweeps of the guided_multigrid initial fill (default: the model '
                        'default)')
    p.add_argument('--fill-guide', default=S2MLConfig.fill_guide, choices=list(FILL_GUIDES),
                   help='guide image of the guided_multigrid initial fill (default: the model '
                        'default)')
    p.add_argument('--hide-holes', default='auto', choices=['auto', 'yes', 'no'],
                   help='hide valid pixels with real hole patterns (auto: folders without GT)')
    p.add_argument('--hide-draws', type=int, default=1, metavar='N',
                   help='with hidden pixels, score every frame N times under other moved hole '
                        'shapes (seeds S, S+1, ...; the figures cover all draws)')
    p.add_argument('--hide-seed', type=int, default=0, metavar='S',
                   help='seed of the first draw of moved hole shapes')
    p.add_argument('--degrade', nargs='+', default=['none'], choices=DEGRADATIONS,
                   help='input corruptions for robustness tests; one table per corruption')
    p.add_argument('--stages', action='store_true',
                   help='also score every cascade stage of each checkpoint')
    p.add_argument('--keep-measured', action='store_true',
                   help='network output keeps measured pixels (baselines always do)')
    p.add_argument('--flip-average', action='store_true',
                   help='score each checkpoint a second time with the frame and its mirror image '
                        "averaged ('s2ml:<name>+flip')")
    p.add_argument('--register-colour', action='store_true',
                   help="estimate each frame's colour-to-depth offset from its input "
                        'alone and move the colour by it for every method (prints the offsets '
                        'found)')
    p.add_argument('--device', default='auto', help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'],
                   help='network precision (reduced precision on CUDA only)')
    p.add_argument('--output', default=None, help='write results as .json or .csv')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, Dict[str, float]]]:
    """
    Evaluate; print one table per data source and optionally write them.

    :return: source -> method -> metrics.
    """
    args = get_args_parser().parse_args(argv)
    try:
        check_share('--level-views', args.level_views)
        check_share('--clutter', args.clutter)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if args.hide_draws < 1:
        raise SystemExit(f'--hide-draws must be at least 1, got {args.hide_draws}')
    methods: Dict[str, Method] = {}
    for name in args.baselines:
        if name == 'raw':
            methods['raw'] = lambda rgb, depth: depth
        elif name in BASELINES:
            methods[name] = BASELINES[name]
        else:
            raise SystemExit(f'unknown baseline {name!r}; choose from raw, {list(BASELINES)}')
    for name in args.initial_fills:
        label = f'fill:{name}'
        if name == 'guided_multigrid' and args.fill_iterations != S2MLConfig.fill_iterations:
            label += f'@{args.fill_iterations}'
        if name == 'guided_multigrid' and args.fill_solver != S2MLConfig.fill_solver:
            label += f':{args.fill_solver}'
        if name == 'guided_multigrid' and args.fill_guide != S2MLConfig.fill_guide:
            label += f':{args.fill_guide}'
        methods[label] = initial_fill_method(name, args.fill_iterations, args.fill_solver,
                                             args.fill_guide)
    stems = [Path(path).stem for path in args.checkpoint]
    for path, stem in zip(args.checkpoint, stems):
        # Runs all write best.safetensors: name such files by their folder as well.
        label = stem if stems.count(stem) == 1 else f'{Path(path).parent.name}/{stem}'
        methods.update(model_methods(path, args.device, args.keep_measured, args.precision,
                                     args.stages, label))
        if args.flip_average:
            methods.update(model_methods(path, args.device, args.keep_measured, args.precision,
                                         args.stages, f'{label}+flip', flip_average=True))
    estimate = registered_colour_offsets() if args.register_colour else None
    report: Dict[str, Dict[str, Dict[str, float]]] = {}
    rows = []
    for source, dataset in build_frames(args):
        frames = _Frames(dataset)  # loaded one at a time: a test set need not fit in memory
        no_gt = isinstance(dataset, ds.RgbdFolder) and all(p[3] is None for p in dataset.pairs)
        hide = args.hide_holes == 'yes' or (args.hide_holes == 'auto' and no_gt)
        for kind in args.degrade:
            key = source if kind == 'none' else f'{source}+{kind}'
            offsets: List[Tuple[int, int]] = []
            results, times = evaluate_methods(frames, methods, hide, args.no_progress, kind,
                                              args.hide_draws, args.hide_seed, estimate,
                                              offsets)
            report[key] = results
            draws = f' ({args.hide_draws} draws)' if hide and args.hide_draws > 1 else ''
            print(f'\n## {key}: {len(frames)} frames'
                  + (f', valid pixels hidden with real hole patterns{draws}' if hide else ''))
            print(format_table(results, times))
            if offsets:
                counts = Counter(offsets)
                print('colour offsets (rows, columns) px, estimated per frame and draw: '
                      + ', '.join(f'{o}: {c}' for o, c in counts.most_common()))
            for name, m in results.items():
                rows.append({'source': source, 'degradation': kind, 'method': name,
                             'hidden_holes': hide, 'ms_per_frame': 1e3 * times[name], **m})
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == '.csv':
            fields = list(dict.fromkeys(k for r in rows for k in r))
            with open(out, 'w', newline='') as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        else:
            out.write_text(json.dumps(rows, indent=1, default=float))
    return report


if __name__ == '__main__':
    main()
