"""
Cost of the network's parameter-free initial fill D_0: grid-aligned against local pyramid.

Usage: python bench/bench_fill.py [--runs 30] [--threads 1] [--hole-fraction 0.2]
Fills the same 640x480 depth (random holes) with both variants alternately and prints the
median time of each and their ratio.
"""

import argparse
import statistics
import time

from s2ml_ros.model.layers import pyramid_fill
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--runs', type=int, default=30, help='timed calls per variant')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--hole-fraction', type=float, default=0.2, help='share of holes')
    parser.add_argument('--size', type=int, nargs=2, default=[640, 480], metavar=('W', 'H'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    w, h = args.size
    mask = (torch.rand(1, 1, h, w, generator=gen) >= args.hole_fraction).float()
    depth = (0.5 + 4.0 * torch.rand(1, 1, h, w, generator=gen)) * mask
    times = {False: [], True: []}
    with torch.inference_mode():
        for _ in range(args.runs + 2):  # alternate, so both see the same machine load
            for local in (False, True):
                t0 = time.perf_counter()
                pyramid_fill(depth, mask, local=local)
                times[local].append(time.perf_counter() - t0)
    grid, local = (statistics.median(times[k][2:]) * 1e3 for k in (False, True))
    print(f'{w}x{h}, {args.hole_fraction:.0%} holes, {args.threads} thread(s), median of '
          f'{args.runs}: pyramid {grid:.1f} ms, local_pyramid {local:.1f} ms '
          f'({local / grid:.1f}x)')


if __name__ == '__main__':
    main()
