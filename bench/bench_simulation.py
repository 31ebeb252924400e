"""
Simulator throughput: frames per second of SimulatedRgbdCamera.next_frame (render + sensor).

Usage: python bench/bench_simulation.py [--frames 20] [--sensor structured_light]
Prints the median time per frame and frames/s at 320x240 and 640x480 on one process.
"""

import argparse
import statistics
import time

from s2ml_ros.simulation import SENSOR_PRESETS, SimulatedRgbdCamera


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=20, help='frames timed per size')
    parser.add_argument('--sensor', default='structured_light', choices=sorted(SENSOR_PRESETS),
                        help='sensor preset')
    parser.add_argument('--seed', type=int, default=0, help='scene seed')
    args = parser.parse_args()
    for width, height in ((320, 240), (640, 480)):
        cam = SimulatedRgbdCamera(width, height, args.sensor, seed=args.seed)
        cam.next_frame()  # warm-up: scene generation, caches
        times = []
        for _ in range(args.frames):
            t0 = time.perf_counter()
            cam.next_frame()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f'{width}x{height} {args.sensor}: median {med * 1e3:.1f} ms/frame, '
              f'{1 / med:.1f} frames/s ({args.frames} frames, seed {args.seed})')


if __name__ == '__main__':
    main()
