"""
Cost of the network's parameter-free initial fills D_0, timed side by side.

Usage: python bench/bench_fill.py [--runs 30] [--threads 1] [--hole-fraction 0.2]
Fills the same 640x480 depth (random holes plus one hole a quarter of each side) with every
variant in turn and prints the median time of each and its ratio to the grid-aligned pyramid
fill.
"""

import argparse
import functools
import statistics
import time

from s2ml_ros.model.layers import guided_multigrid_fill, initial_fill, pyramid_fill
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
    mask[..., h // 4:h // 2, w // 4:w // 2] = 0
    depth = (0.5 + 4.0 * torch.rand(1, 1, h, w, generator=gen)) * mask
    colour = torch.rand(1, 3, h, w, generator=gen)
    gray = colour.mean(1, keepdim=True)
    variants = {
        'pyramid': lambda: pyramid_fill(depth, mask),
        'local_pyramid': lambda: pyramid_fill(depth, mask, local=True),
        # fill_iterations 5 (weights up to stage 4) and 20 (since stage 5), Jacobi sweeps (up
        # to stage 6) and SOR sweeps (the default fill_solver); grey affinities (up to stage 6),
        # RGB ones (stage 12) and chroma-weighted ones (the default fill_guide).
        'guided_multigrid@5:jacobi': lambda: guided_multigrid_fill(depth, mask, gray, 5,
                                                                   solver='jacobi'),
        'guided_multigrid@20:jacobi': lambda: guided_multigrid_fill(depth, mask, gray, 20,
                                                                    solver='jacobi'),
        # Through initial_fill, so the guide's colour transform is timed with the sweeps.
        **{f'guided_multigrid@20:sor:{guide}': functools.partial(
            initial_fill, depth, mask, colour, 'guided_multigrid', 20, 'sor', guide)
           for guide in ('gray', 'rgb', 'chroma')},
    }
    times = {name: [] for name in variants}
    with torch.inference_mode():
        for _ in range(args.runs + 2):  # round robin, so all see the same machine load
            for name, fill in variants.items():
                t0 = time.perf_counter()
                fill()
                times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(t[2:]) * 1e3 for name, t in times.items()}
    shown = ', '.join(f'{name} {ms:.1f} ms ({ms / medians["pyramid"]:.1f}x)'
                      for name, ms in medians.items())
    print(f'{w}x{h}, {args.hole_fraction:.0%} holes + one {w // 4}x{h // 4} hole, {args.threads} '
          f'thread(s), median of {args.runs}: {shown}')


if __name__ == '__main__':
    main()
