"""
Write simulated frames as a folder of PNGs that :class:`training.datasets.RgbdFolder` reads.

Layout: ``color/<name>.png`` (8-bit RGB), ``depth/<name>.png`` (raw, 16-bit, millimetres,
0 = hole), ``depth_gt/<name>.png`` (exact depth, 16-bit millimetres) and ``intrinsics.json``.
Example, from the repository root::

    python -m training.export_sim --out /tmp/sim_frames --num 20 --size 640 480 \
        --sensor active_stereo --split test
"""

import argparse
import json
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from .datasets import SimulatedRgbd


def export(out: Path, num: int, width: int, height: int, sensor: str, split: str) -> Path:
    """
    Render ``num`` frames of the simulated ``split`` set into ``out``.

    :return: The folder written.
    """
    ds = SimulatedRgbd(num, width, height, [sensor], split)
    for sub in ('color', 'depth', 'depth_gt'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    k = None
    for i in range(num):
        s = ds.sample(i)
        name = f'{i:05d}'
        cv2.imwrite(str(out / 'color' / f'{name}.png'), s['rgb'][..., ::-1])
        for key, sub in (('depth', 'depth'), ('gt', 'depth_gt')):
            mm = np.clip(np.round(s[key] * 1000), 0, 65535).astype(np.uint16)
            cv2.imwrite(str(out / sub / f'{name}.png'), mm)
        k = s['intrinsics']
    (out / 'intrinsics.json').write_text(json.dumps(
        {'fx': k.fx, 'fy': k.fy, 'cx': k.cx, 'cy': k.cy, 'width': k.width, 'height': k.height,
         'depth_scale': 1000, 'sensor': sensor, 'split': split,
         'notes': 'simulated by s2ml_ros.simulation; depth registered to colour'}, indent=1))
    return out


def main(argv: Optional[List[str]] = None) -> None:
    """Parse arguments and export."""
    p = argparse.ArgumentParser(description='Export simulated RGB-D frames as PNG pairs')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--num', type=int, default=20, help='number of frames')
    p.add_argument('--size', type=int, nargs=2, default=[640, 480], metavar=('W', 'H'),
                   help='frame size')
    p.add_argument('--sensor', default='structured_light', help='sensor preset')
    p.add_argument('--split', default='test', choices=['train', 'test'], help='seed range')
    args = p.parse_args(argv)
    out = export(Path(args.out), args.num, args.size[0], args.size[1], args.sensor, args.split)
    print(f'wrote {args.num} frames to {out}')


if __name__ == '__main__':
    main()
