"""
Estimate a camera's colour-to-depth registration offset from a recorded bag.

Usage::

    s2ml_colour_offset recording/ [--params-file config/s2ml.yaml] [--frames 10] [--every 15]

Frames are read and paired as the node pairs them (:mod:`s2ml_ros.bag_io`); on each chosen
frame the offset is estimated from the frame alone (:func:`s2ml_ros.registration.
estimate_colour_offset`, scored with the network's initial fill), and the offset most frames
agree on is printed as the node parameters ``colour_offset_x_px`` / ``colour_offset_y_px``.
The estimate is relative to the colour as recorded: offsets in the parameter file are ignored.
"""

import argparse
from collections import Counter
from dataclasses import replace
import logging
import sys
from typing import List, Optional, Sequence, Tuple

from s2ml_ros.bag_eval import load_params_file, load_predictor
from s2ml_ros.bag_io import BagEvalError, BagReader, detect_topics, iter_framesets, PairingStats
from s2ml_ros.completion import prepare_frame
from s2ml_ros.conversions import ConversionError
from s2ml_ros.params import ParameterError, params_from_mapping


def estimate_bag_offset(bag_path: str, predictor, params, frames: int = 10, every: int = 15,
                        max_offset: int = 3, color_topic: Optional[str] = None,
                        depth_topic: Optional[str] = None, info_topic: Optional[str] = None
                        ) -> Tuple[Tuple[int, int], List[Tuple[int, int, int]]]:
    """
    Estimate the offset on every ``every``-th frame set of a bag, up to ``frames`` of them.

    :param bag_path: Bag folder or .mcap / .db3 file.
    :param predictor: A loaded ``DepthCompletionPredictor`` (its initial fill scores offsets).
    :param params: Node parameters (sync, depth scale and range, output size); their colour
        offsets are ignored.
    :param frames: Frame sets to estimate on.
    :param every: Use one frame set in this many (spread over the recording).
    :param max_offset: Largest offset tried along each axis, px.
    :return: ((rows, columns) most frames agree on, [(frame index, rows, columns), ...]).
    :raises BagEvalError: For an unusable bag, bad counts, or no frame that could be read.
    """
    if frames < 1 or every < 1:
        raise BagEvalError(f'frames and every must be >= 1, got {frames} and {every}')
    params = replace(params, colour_offset_x_px=0, colour_offset_y_px=0)
    found: List[Tuple[int, int, int]] = []
    with BagReader(bag_path) as bag:
        selection = detect_topics(bag, color_topic, depth_topic, info_topic, '')
        for fs in iter_framesets(bag, selection, params, PairingStats()):
            if fs.index % every:
                continue
            try:
                frame = prepare_frame(fs.color, fs.depth, fs.info, params)
            except ConversionError as exc:
                logging.getLogger(__name__).warning('frame %d: %s; skipped', fs.index, exc)
                continue
            offset = predictor.estimate_colour_offset(frame.rgb, frame.depth_m,
                                                      max_offset=max_offset)
            found.append((fs.index, offset.dy, offset.dx))
            if len(found) >= frames:
                break
    if not found:
        raise BagEvalError(f'{bag_path}: no color/depth frame could be read')
    votes = Counter((dy, dx) for _, dy, dx in found)
    return votes.most_common(1)[0][0], found


def build_parser() -> argparse.ArgumentParser:
    """:return: The command-line parser."""
    parser = argparse.ArgumentParser(
        prog='s2ml_colour_offset', description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('bag', help='rosbag2 bag folder, or a single .mcap / .db3 file')
    parser.add_argument('--params-file', default=None,
                        help='node parameter YAML: the same sync, depth scale and range')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint whose initial fill scores the offsets (default: the '
                        'packaged weights)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--color-topic', default=None, help='color Image topic')
    parser.add_argument('--depth-topic', default=None, help='raw depth Image topic')
    parser.add_argument('--info-topic', default=None, help='color CameraInfo topic')
    parser.add_argument('--frames', type=int, default=10, help='frames to estimate on')
    parser.add_argument('--every', type=int, default=15, help='use one frame set in this many')
    parser.add_argument('--max-offset', type=int, default=3,
                        help='largest offset tried along each axis, px')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Console entry point ``s2ml_colour_offset``.

    :return: Exit status (0 ok, 2 bad input).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        values = load_params_file(args.params_file) if args.params_file else {}
        params = params_from_mapping(values)
        if args.max_offset < 0:
            raise ParameterError(f'--max-offset must be >= 0 px, got {args.max_offset}')
        predictor = load_predictor(args.checkpoint, args.device, 'fp32')
        (dy, dx), found = estimate_bag_offset(
            args.bag, predictor, params, args.frames, args.every, args.max_offset,
            args.color_topic, args.depth_topic, args.info_topic)
    except (BagEvalError, ParameterError) as exc:
        print(f's2ml_colour_offset: error: {exc}', file=sys.stderr)
        return 2
    for index, fdy, fdx in found:
        print(f'frame {index}: colour moved {fdx:+d} px right, {fdy:+d} px down')
    agree = sum(1 for _, fdy, fdx in found if (fdy, fdx) == (dy, dx))
    print(f'{agree} of {len(found)} frames agree; node parameters:')
    print(f'colour_offset_x_px: {dx}')
    print(f'colour_offset_y_px: {dy}')
    return 0
