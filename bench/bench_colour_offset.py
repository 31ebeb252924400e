#!/usr/bin/env python3
"""
Cost of estimating a colour-to-depth offset, against one frame of the predictor, in one run.

The estimate (:meth:`DepthCompletionPredictor.estimate_colour_offset`) runs the colour-guided
initial fill for every candidate offset and draw of hidden pixels; it is a calibration step
(``s2ml_colour_offset``), so the figure to read is how many frames of completion one estimate
costs. Both are timed alternating on the same simulated frame.

    python bench/bench_colour_offset.py                    # packaged weights, CPU
"""

import argparse
import statistics
import time
from typing import List

from s2ml_ros.pipeline import DepthCompletionPredictor
from s2ml_ros.simulation import SimulatedRgbdCamera
import torch

SIZES = {'320x240': (320, 240), '640x480': (640, 480)}


def main(argv: List[str] = None) -> None:
    """Print the median estimate and completion times per frame size, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', default=None, help='default: the packaged weights')
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--runs', type=int, default=3, help='timed runs per size')
    parser.add_argument('--device', default='auto')
    args = parser.parse_args(argv)
    predictor = DepthCompletionPredictor.from_checkpoint(args.checkpoint, device=args.device)
    print(f'device {predictor.device}, threads {torch.get_num_threads()}, torch '
          f'{torch.__version__}, {args.runs} runs')
    print('| size | estimate s | offsets tried | completion ms | estimate / completion |')
    print('|---|---|---|---|---|')
    for size in args.sizes:
        width, height = SIZES[size]
        frame = SimulatedRgbdCamera(width, height, 'structured_light', seed=3).frame_at(0)
        rgb, depth = frame.rgb, frame.depth_raw_m
        predictor.predict(rgb, depth)  # warm-up
        estimates, completions, tried = [], [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            tried = len(predictor.estimate_colour_offset(rgb, depth).errors)
            estimates.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            predictor.predict(rgb, depth)
            completions.append(time.perf_counter() - t0)
        est, comp = statistics.median(estimates), statistics.median(completions)
        print(f'| {size} | {est:.2f} | {tried} | {1e3 * comp:.0f} | {est / comp:.0f} |')


if __name__ == '__main__':
    main()
