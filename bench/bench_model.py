#!/usr/bin/env python3
"""
Size, FLOPs and latency of the S2ML variants, side by side with a plain U-Net.

For every variant the U-Net's width is chosen so its parameter count matches the variant's,
and both are timed in the same run, alternating, so machine noise hits them alike.

    python bench/bench_model.py                       # CPU, tiny and base, 320x240 and 640x480
    python bench/bench_model.py --device cuda --precision fp16 --compile
"""

import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

from s2ml_ros.model import build_s2ml, get_config
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

SIZES = {'320x240': (240, 320), '640x480': (480, 640)}


class PlainUNet(nn.Module):
    """
    A plain 4-level U-Net on [rgb, depth, mask] -> depth, the usual depth-completion baseline.

    :param width: Channels of the first level (doubled per level).
    :param levels: Encoder levels.
    """

    def __init__(self, width: int, levels: int = 4) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))

        chans = [width * 2 ** i for i in range(levels)]
        self.down = nn.ModuleList()
        cin = 5
        for c in chans:
            self.down.append(block(cin, c))
            cin = c
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for c_skip, c_in in zip(reversed(chans[:-1]), reversed(chans[1:])):
            self.up.append(nn.ConvTranspose2d(c_in, c_skip, 2, stride=2))
            self.fuse.append(block(2 * c_skip, c_skip))
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.levels = levels

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """:param rgb: [B, 3, H, W]. :param depth: [B, 1, H, W]. :return: [B, 1, H, W]."""
        x = torch.cat([rgb, depth, (depth > 0).to(depth.dtype)], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.levels - 1:
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
        for up, fuse in zip(self.up, self.fuse):
            x = fuse(torch.cat([up(x), skips.pop()], dim=1))
        return depth + self.head(x)


def count_params(model: nn.Module) -> int:
    """:return: Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def unet_matching(params: int) -> PlainUNet:
    """:return: The plain U-Net whose parameter count is closest to ``params``."""
    best = min(range(2, 129), key=lambda w: abs(count_params(PlainUNet(w)) - params))
    return PlainUNet(best)


def gflops(model: nn.Module, rgb: torch.Tensor, depth: torch.Tensor) -> float:
    """:return: GFLOPs of one forward pass, by torch's flop counter (FFTs are not counted)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(rgb, depth)
    return counter.get_total_flops() / 1e9


def median_ms(fn: Callable[[], None], runs: int, sync: Callable[[], None]) -> List[float]:
    """:return: Per-run wall times in ms (after one warm-up call)."""
    fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bench_pair(variant: str, size: Tuple[int, int], runs: int, device: torch.device,
               precision: str, compile_model: bool, channels_last: bool) -> Dict[str, float]:
    """Time one variant and its matching U-Net at one size, interleaved."""
    s2ml = build_s2ml(variant).to(device)
    unet = unet_matching(count_params(s2ml)).to(device).eval()
    h, w = size
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, h, w, generator=gen).to(device)
    depth = (torch.rand(1, 1, h, w, generator=gen) * 5).to(device)
    depth[depth < 0.8] = 0  # ~16% holes
    result = {'params': count_params(s2ml), 'unet_params': count_params(unet),
              'gflops': gflops(s2ml, rgb, depth), 'unet_gflops': gflops(unet, rgb, depth)}
    if channels_last:
        s2ml = s2ml.to(memory_format=torch.channels_last)
        unet = unet.to(memory_format=torch.channels_last)
        rgb = rgb.contiguous(memory_format=torch.channels_last)
    run_s2ml, run_unet = s2ml, unet
    if compile_model:
        run_s2ml, run_unet = torch.compile(s2ml), torch.compile(unet)
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(precision)

    def call(model: nn.Module) -> Callable[[], None]:
        def fn() -> None:
            autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
            with torch.inference_mode(), autocast:
                model(rgb, depth)
        return fn

    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    s2ml_times, unet_times = [], []
    for _ in range(runs):  # alternate so drifts in machine load hit both
        s2ml_times += median_ms(call(run_s2ml), 1, sync)
        unet_times += median_ms(call(run_unet), 1, sync)
    result['ms'] = statistics.median(s2ml_times)
    result['unet_ms'] = statistics.median(unet_times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', nargs='+', default=['tiny', 'base'])
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--runs', type=int, default=7, help='timed runs per model and size')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'])
    parser.add_argument('--compile', action='store_true', help='torch.compile both models')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f'device {device} ({torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"}), '  # noqa: E501
          f'precision {args.precision}, compile {args.compile}, '
          f'channels_last {args.channels_last}, torch {torch.__version__}, '
          f'median of {args.runs} runs')
    header = ('| variant | size | params | U-Net params | GFLOPs | U-Net GFLOPs | ms | U-Net ms '
              '| ratio | FPS |')
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
    for variant in args.variants:
        get_config(variant)  # fail early on a typo
        for size_name in args.sizes:
            r = bench_pair(variant, SIZES[size_name], args.runs, device, args.precision,
                           args.compile, args.channels_last)
            print(f'| {variant} | {size_name} | {r["params"] / 1e6:.3f} M | '
                  f'{r["unet_params"] / 1e6:.3f} M | {r["gflops"]:.2f} | '
                  f'{r["unet_gflops"]:.2f} | {r["ms"]:.1f} | {r["unet_ms"]:.1f} | '
                  f'{r["ms"] / r["unet_ms"]:.2f} | {1e3 / r["ms"]:.1f} |', flush=True)


if __name__ == '__main__':
    main()
