"""
Compare simulated raw-depth holes with real ones: statistics table and optional figures.

Usage::

    python bench/sim_vs_real.py --realdata REAL_FRAMES_DIR [--frames 12]
        [--figure docs/simulated_raw_depth.png --stats-plot docs/simulator_hole_stats.png]

Per group (real Kinect v1 frames vs the 'structured_light' preset; real RealSense D4xx frames vs
'active_stereo') it prints: hole fraction inside the frame (a 5% border excluded), hole share
of the frame's left 8% (the projector / second-imager band), median hole-component area, the
share of hole pixels in components under 64 px (ragged edges and speckle), and the share of
horizontal hole runs bounded by far depth on the left and near depth on the right, the
orientation of occlusion shadows when the projector is to the right of the camera.
"""

import argparse
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
from s2ml_ros.simulation import SimulatedRgbdCamera

GROUPS = {
    'kinect_v1': (['nyu_slambook2', 'nyu_open3d', 'tum_slambook', 'tum_open3d'],
                  'structured_light'),
    'realsense_d4xx': (['realsense_d4xx_ucn'], 'active_stereo'),
}


def hole_stats(raw: np.ndarray) -> Dict[str, float]:
    """
    Hole statistics of one raw depth image (0 = hole).

    :param raw: Depth, float [H, W], meters.
    :return: Statistic name -> value (see the module docstring).
    """
    h, w = raw.shape
    by, bx = int(0.05 * h), int(0.05 * w)
    inner = raw[by:h - by, bx:w - bx]
    holes = (inner <= 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    small = areas[areas < 64 * (w / 640) ** 2].sum() / max(areas.sum(), 1)
    band = raw[:, :int(0.08 * w)] <= 0
    shadow, runs = 0, 0
    for row in inner:
        hole = row <= 0
        edges = np.flatnonzero(np.diff(hole.astype(np.int8)))
        starts = edges[::2] + 1 if hole.size and not hole[0] else edges[1::2] + 1
        for s in starts:
            e = s
            while e < row.size and row[e] <= 0:
                e += 1
            if s == 0 or e >= row.size or e - s > 0.2 * w:
                continue
            left, right = row[s - 1], row[e]
            runs += 1
            shadow += int(left > 1.05 * right)
    return {'hole_frac': float(holes.mean()), 'left_band_hole_frac': float(band.mean()),
            'median_component_px': float(np.median(areas)) if areas.size else 0.0,
            'small_component_share': float(small),
            'shadow_oriented_runs': shadow / max(runs, 1)}


def real_frames(root: Path, folders: List[str]) -> List[Dict[str, np.ndarray]]:
    """:return: Real raw frames {'name', 'depth', 'rgb'} of the given sub-folders."""
    import json
    out = []
    for folder in folders:
        d = root / folder
        if not d.is_dir():
            continue
        info = json.loads((d / 'intrinsics.json').read_text())
        for depth_file in sorted(d.glob('*_depth_raw.png')):
            name = depth_file.name[:-len('_depth_raw.png')]
            scale = info.get('frames', {}).get(name, info).get('depth_scale', 1000)
            raw = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED).astype(np.float32) / scale
            color = next(iter(sorted(d.glob(f'{name}_color.*'))), None)
            rgb = cv2.imread(str(color))[..., ::-1] if color is not None else None
            out.append({'name': f'{folder}/{name}', 'depth': raw, 'rgb': rgb})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--realdata', required=True,
                        help='folder of real frames: <source>/<frame>_depth_raw.png')
    parser.add_argument('--frames', type=int, default=12, help='simulated frames per group')
    parser.add_argument('--figure', default=None, help='write a side-by-side PNG here')
    parser.add_argument('--stats-plot', default=None, help='write a statistics bar plot here')
    args = parser.parse_args()
    root = Path(args.realdata)
    table = {}
    sims = {}
    for group, (folders, sensor) in GROUPS.items():
        real = real_frames(root, folders)
        sim = [SimulatedRgbdCamera(640, 480, sensor, seed=100 + i).frame_at(5 * i)
               for i in range(args.frames)]
        sims[group] = sim
        for label, frames in ((f'real {group}', [f['depth'] for f in real]),
                              (f'sim {sensor}', [f.depth_raw_m for f in sim])):
            if not frames:
                continue
            stats = [hole_stats(d) for d in frames]
            table[label] = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
            table[label]['frames'] = len(frames)
    keys = ['frames', 'hole_frac', 'left_band_hole_frac', 'median_component_px',
            'small_component_share', 'shadow_oriented_runs']
    print('| source | ' + ' | '.join(keys) + ' |')
    print('|' + '---|' * (len(keys) + 1))
    for label, row in table.items():
        print(f'| {label} | ' + ' | '.join(f'{row[k]:.3g}' for k in keys) + ' |')
    if args.figure:
        write_figure(Path(args.figure), sims)
    if args.stats_plot:
        write_stats_plot(Path(args.stats_plot), table)


def _vis(depth: np.ndarray, lo: float = 0.5, hi: float = 5.0) -> np.ndarray:
    dn = np.clip((depth - lo) / (hi - lo), 0, 1)
    img = cv2.applyColorMap((dn * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
    img[depth <= 0] = (255, 0, 255)
    return img


def write_figure(path: Path, sims: Dict[str, list]) -> None:
    """
    Write simulated colour / exact depth / raw depth, one row per sensor group.

    Only simulated pixels go into the figure: the real frames are evaluation data whose
    licences do not allow copying them into the repository, so the README describes the real
    frame they are compared with and the statistics plot carries the comparison.
    """
    rows = []
    for sim in sims.values():
        f = sim[1]
        tiles = [f.rgb, _vis(f.depth_gt_m), _vis(f.depth_raw_m)]
        rows.append(np.hstack([cv2.resize(t, (256, 192), interpolation=cv2.INTER_AREA)
                               for t in tiles]))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])


def write_stats_plot(path: Path, table: Dict[str, Dict[str, float]]) -> None:
    """Bar plot of the hole statistics, real beside simulated."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = ['hole_frac', 'left_band_hole_frac', 'small_component_share', 'shadow_oriented_runs']
    labels = list(table)
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        ax.bar(x + i * width, [table[label][k] for k in keys], width, label=label)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(['hole fraction', 'left-band holes', 'small-component share',
                        'shadow-oriented runs'])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title('Raw-depth holes: real frames vs simulator presets')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


if __name__ == '__main__':
    main()
