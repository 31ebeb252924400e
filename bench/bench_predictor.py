#!/usr/bin/env python3
"""
End-to-end predictor latency per precision and compile setting, side by side in one run.

What the node pays per frame: upload of the uint8 colour and float depth, the initial fill, the
network, and the download of the completed depth. Every setting loads the same weights and is
timed alternately on the same simulated frame, so machine noise hits them alike; the table also
gives each setting's largest difference from the first setting's output (what reduced precision
costs in meters).

    python bench/bench_predictor.py                                    # CPU, fp32
    python bench/bench_predictor.py --device cuda --settings fp32 fp32+graph fp16 fp16+graph
    python bench/bench_predictor.py --large-hole-change 1 0.25   # the fade in large holes off / on
"""

import argparse
import dataclasses
import statistics
import time
from typing import List, Tuple, Union

import numpy as np
from s2ml_ros.model import DEFAULT_CHECKPOINT, load_checkpoint, S2ML
from s2ml_ros.model.hole_regions import hole_region_share
from s2ml_ros.pipeline import DepthCompletionPredictor, PRECISIONS, resolve_device
from s2ml_ros.simulation import SimulatedRgbdCamera
import torch

SIZES = {'320x240': (240, 320), '640x480': (480, 640)}
COMPILE_MODES = ('compile', 'reduce-overhead', 'max-autotune')
MODES = ('graph',) + COMPILE_MODES


def parse_setting(text: str) -> Tuple[str, Union[bool, str], bool]:
    """
    Read one setting such as ``fp16``, ``fp16+graph`` or ``fp16+reduce-overhead``.

    No mode runs the model as it is, 'graph' replays it from CUDA graphs, and the compile modes
    use torch.compile instead.

    :return: (precision, compile_model, cuda_graph) arguments of the predictor.
    :raises ValueError: For an unknown precision or mode.
    """
    precision, _, mode = text.partition('+')
    if precision not in PRECISIONS:
        raise ValueError(f'setting {text!r}: unknown precision {precision!r}; '
                         f'accepted: {", ".join(PRECISIONS)}')
    if mode and mode not in MODES:
        raise ValueError(f'setting {text!r}: unknown mode {mode!r}; '
                         f'accepted: {", ".join(MODES)}')
    if mode in COMPILE_MODES:
        return precision, True if mode == 'compile' else mode, False
    return precision, False, mode == 'graph'


def main(argv: List[str] = None) -> None:
    """Print median latency, FPS and output difference per setting and size."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', default=None, help='default: the packaged weights')
    parser.add_argument('--settings', nargs='+', default=['fp32'],
                        help='precision, optionally +graph (CUDA graphs) or +compile, '
                             '+reduce-overhead, +max-autotune (torch.compile); the first is '
                             'the reference')
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--runs', type=int, default=21, help='timed frames per setting and size')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed frames per setting and size (compilation happens here)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--large-hole-change', type=float, nargs='+', default=None,
                        metavar='G', help='run every setting with each of these '
                        'large_hole_change values (1: off) instead of the checkpoint value')
    args = parser.parse_args(argv)
    settings = [(text, *parse_setting(text)) for text in args.settings]
    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = load_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT)
    variants = [(f' fade {g:g}', dataclasses.replace(model.config, large_hole_change=g))
                for g in args.large_hole_change] if args.large_hole_change else \
        [('', model.config)]
    predictors, labels = [], []
    for suffix, config in variants:
        for text, precision, mode, graph in settings:
            copy = S2ML(config)
            copy.load_state_dict(model.state_dict())
            predictors.append(DepthCompletionPredictor(
                copy, info, resolve_device(args.device), precision=precision,
                compile_model=mode, cuda_graph=graph))
            labels.append(text + suffix)
    device = predictors[0].device
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'{torch.get_num_threads()} CPU threads'
    print(f'device {device} ({name}), torch {torch.__version__}, median of {args.runs} frames')
    print('| size | setting | ms | FPS | ratio to first | max abs diff to first (m) | '
          'warm-up s |')
    print('|---|---|---|---|---|---|---|')
    for size in args.sizes:
        height, width = SIZES[size]
        frame = SimulatedRgbdCamera(width, height, 'structured_light', seed=0).next_frame()
        rgb, depth = frame.rgb, frame.depth_raw_m
        outputs, warmups = [], []
        for predictor in predictors:
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                out = predictor.predict(rgb, depth)
            warmups.append(time.perf_counter() - t0)
            outputs.append(out)
        times = [[] for _ in predictors]
        for _ in range(args.runs):
            for i, predictor in enumerate(predictors):
                # predict() returns host memory, so it has waited for the device.
                t0 = time.perf_counter()
                predictor.predict(rgb, depth)
                times[i].append(1e3 * (time.perf_counter() - t0))
        first = statistics.median(times[0])
        for text, t, out, warm in zip(labels, times, outputs, warmups):
            ms = statistics.median(t)
            diff = float(np.abs(out - outputs[0]).max())
            print(f'| {size} | {text} | {ms:.2f} | {1e3 / ms:.1f} | {ms / first:.2f} | '
                  f'{diff:.4f} | {warm:.1f} |', flush=True)
        if args.large_hole_change:
            valid = np.isfinite(depth) & (depth > 0)
            labelling = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                hole_region_share(valid)
                labelling.append(1e3 * (time.perf_counter() - t0))
            print(f'| {size} | hole region labelling alone | {statistics.median(labelling):.2f} '
                  f'| | | | |', flush=True)


if __name__ == '__main__':
    main()
