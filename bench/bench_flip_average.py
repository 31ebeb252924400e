#!/usr/bin/env python3
"""
Latency of the predictor with and without ``flip_average``, side by side in one run.

Both predictors load the same weights and are timed alternating on the same frames, so machine
noise hits them alike; the figure that matters is the ratio of the medians.

    python bench/bench_flip_average.py                     # packaged weights, CPU
    python bench/bench_flip_average.py --device cuda --precision fp16
"""

import argparse
import statistics
import time
from typing import List

import numpy as np
from s2ml_ros.pipeline import DepthCompletionPredictor
import torch

SIZES = {'320x240': (240, 320), '640x480': (480, 640)}


def _frame(height: int, width: int) -> tuple:
    """:return: (rgb uint8 [H, W, 3], depth float32 [H, W] in m with a fifth of it missing)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 4.0, (height, width)).astype(np.float32)
    depth[rng.random((height, width)) < 0.2] = 0.0
    return rgb, depth


def main(argv: List[str] = None) -> None:
    """Print median latency per frame size with flip_average off and on, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', default=None, help='default: the packaged weights')
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--runs', type=int, default=11, help='timed frames per setting and size')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'])
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    plain = DepthCompletionPredictor.from_checkpoint(args.checkpoint, device=args.device,
                                                     precision=args.precision)
    averaged = DepthCompletionPredictor.from_checkpoint(args.checkpoint, device=args.device,
                                                        precision=args.precision,
                                                        flip_average=True)
    print(f'device {plain.device}, precision {plain.precision}, threads '
          f'{torch.get_num_threads()}, torch {torch.__version__}, {args.runs} runs')
    print('| size | plain ms | flip_average ms | ratio |')
    print('|---|---|---|---|')
    for size in args.sizes:
        rgb, depth = _frame(*SIZES[size])
        times = {'plain': [], 'flip': []}
        for predictor in (plain, averaged):  # warm-up
            predictor.predict(rgb, depth)
        for _ in range(args.runs):
            for name, predictor in (('plain', plain), ('flip', averaged)):
                # predict() returns host memory, so it has waited for the device.
                t0 = time.perf_counter()
                predictor.predict(rgb, depth)
                times[name].append(1e3 * (time.perf_counter() - t0))
        p, f = statistics.median(times['plain']), statistics.median(times['flip'])
        print(f'| {size} | {p:.1f} | {f:.1f} | {f / p:.2f} |')


if __name__ == '__main__':
    main()
