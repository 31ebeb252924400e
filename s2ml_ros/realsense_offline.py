"""
Complete a RealSense recording offline and compare with librealsense's own filters.

``s2ml_realsense_offline REC.db3 -o OUT`` plays a librealsense recording (``.db3``, or a legacy
``.bag``) with :class:`s2ml_ros.realsense_source.RealSenseSource` (depth aligned to colour, no
frame dropped), runs each frame through the node's steps (the frame enters as the 16UC1
millimetre image that ``s2ml_realsense`` would publish, then
:func:`s2ml_ros.completion.prepare_frame`, the predictor and
:func:`s2ml_ros.completion.finalize_depth`) and writes into OUT:

- ``depth_completed/<frame number>.png``: the completed depth, 16-bit PNG in millimetres,
  0 = unknown (what the node would publish with ``output_encoding: 16UC1``);
- ``report.json`` and ``report.html``: S2ML, the classical baselines and librealsense's
  post-processing (hole filling, spatial, temporal and the realsense-ros chain), scored with the
  same metrics under the same hidden-pixel protocol (:mod:`s2ml_ros.offline_eval`).

Outputs are staged under a temporary name and renamed at the end; a failed run leaves none.
Exit status: 0 on success, 2 for bad input, 130 when interrupted, 1 for anything unexpected.
"""

import argparse
from dataclasses import asdict
import datetime
import json
import logging
from pathlib import Path
import sys
import time
from types import SimpleNamespace
from typing import Any, Dict, Optional, Sequence

import cv2
import numpy as np

from s2ml_ros import conversions as conv
from s2ml_ros.bag_eval import (add_run_arguments, DEFAULT_BASELINES, load_predictor,
                               model_info, REFERENCE, run_settings)
from s2ml_ros.bag_io import BagEvalError
from s2ml_ros.completion import apply_predictor_params, finalize_depth, prepare_frame
from s2ml_ros.eval_report import render_html
from s2ml_ros.offline_eval import (Evaluation, HolePlanter, OutputError, path_sha256,
                                   StagedOutput)
from s2ml_ros.params import NodeParams, ParameterError
from s2ml_ros.realsense_source import (FILTER_NAMES, RealSenseConfig, RealSenseDepthFilters,
                                       RealSenseError, RealSenseFrame, RealSenseSource)

_logger = logging.getLogger(__name__)

DEPTH_DIR = 'depth_completed'


def frame_messages(frame: RealSenseFrame) -> tuple:
    """
    Express a frame as the messages ``s2ml_realsense`` publishes (duck-typed).

    :param frame: An aligned frame.
    :return: (color rgb8 image fields, depth 16UC1 mm image fields, CameraInfo-like object).
    """
    color = conv.numpy_to_image_fields(frame.rgb, 'rgb8')
    depth = conv.numpy_to_image_fields(frame.depth_mm, '16UC1')
    info = SimpleNamespace(**camera_info_fields(frame))
    return color, depth, info


def camera_info_fields(frame: RealSenseFrame) -> Dict[str, Any]:
    """:return: CameraInfo field values of the aligned frame, distortion included."""
    fields = conv.camera_info_fields(frame.intrinsics)
    fields['distortion_model'] = frame.camera.distortion_model
    fields['d'] = list(frame.camera.distortion)
    return fields


def evaluate_recording(recording: str, output_dir: str, predictor: Any, params: NodeParams,
                       baselines: Sequence[str] = DEFAULT_BASELINES,
                       filters: Sequence[str] = FILTER_NAMES, save_depth: bool = True,
                       max_frames: int = 0, seed: int = 0, overwrite: bool = False,
                       html_report: bool = True, progress: bool = True) -> Dict[str, Any]:
    """
    Complete and score one recording (see the module docstring).

    :param recording: librealsense recording file.
    :param output_dir: Output folder.
    :param predictor: A loaded ``DepthCompletionPredictor``.
    :param params: Node parameters (depth range, keep_measured).
    :param baselines: Names from :data:`s2ml_ros.baselines.BASELINES`.
    :param filters: librealsense set-ups from :data:`s2ml_ros.realsense_source.FILTER_NAMES`.
    :param save_depth: Write the completed depth PNGs.
    :param max_frames: Stop after this many frames (0 = all).
    :param seed: Seed of the hidden-pixel protocol.
    :param overwrite: Replace existing outputs.
    :param html_report: Also write report.html.
    :param progress: Show a progress bar.
    :return: The JSON report.
    :raises RealSenseError: For an unreadable recording; :class:`OutputError` for outputs.
    """
    from s2ml_ros.baselines import BASELINES
    from tqdm import tqdm

    started = time.time()
    unknown = [f for f in filters if f not in FILTER_NAMES]
    if unknown:
        raise RealSenseError(f'unknown filter set-up(s) {unknown}; available: {FILTER_NAMES}')
    names = ([DEPTH_DIR] if save_depth else []) + ['report.json'] + (
        ['report.html'] if html_report else [])
    with StagedOutput(output_dir, names, overwrite) as stage, \
            RealSenseSource(RealSenseConfig(recording=recording)) as source:
        depth_dir = stage.path(DEPTH_DIR) if save_depth else None
        if depth_dir is not None:
            depth_dir.mkdir()
        methods = [REFERENCE] + list(baselines) + list(filters)
        evaluation = Evaluation(methods, 'hidden_pixels')
        planter = HolePlanter(seed)
        rs_filters: Dict[str, RealSenseDepthFilters] = {}
        bar = tqdm(unit='frame', disable=not progress, desc=Path(recording).name,
                   file=sys.stderr)
        count = 0
        try:
            for frame in source.frames():
                color, depth, info = frame_messages(frame)
                prepared = prepare_frame(color, depth, info, params)
                apply_predictor_params(predictor, params)
                t0 = time.perf_counter()
                completed = predictor.predict(prepared.rgb, prepared.depth_m)
                latency = time.perf_counter() - t0
                depth_out, _ = finalize_depth(completed, prepared.depth_m, params,
                                              with_mask=False)
                if depth_dir is not None:
                    mm = conv.depth_image_fields(depth_out, '16UC1').data.view(np.uint16)
                    png = depth_dir / f'{frame.frame_number:06d}.png'
                    if not cv2.imwrite(str(png), mm.reshape(depth_out.shape)):
                        raise OutputError(f'{png}: cannot write')
                given, _ = planter.plant(prepared.depth_m)
                t0 = time.perf_counter()
                scored = predictor.predict(prepared.rgb, given)
                scored_latency = time.perf_counter() - t0
                predictions = {REFERENCE: (finalize_depth(scored, given, params,
                                                          with_mask=False)[0],
                                           0.5 * (latency + scored_latency))}
                for name in baselines:
                    t0 = time.perf_counter()
                    predictions[name] = (BASELINES[name](prepared.rgb, given),
                                         time.perf_counter() - t0)
                given_mm = np.clip(np.rint(given * 1000.0), 0, 65535).astype(np.uint16)
                for name in filters:
                    if name not in rs_filters:
                        rs_filters[name] = RealSenseDepthFilters(
                            frame.intrinsics, depth_scale=0.001, names=(name,))
                    t0 = time.perf_counter()
                    out = rs_filters[name].apply(given_mm)[name]
                    predictions[name] = (out.astype(np.float32) * np.float32(0.001),
                                         time.perf_counter() - t0)
                evaluation.add_frame(count, int(frame.timestamp_ms * 1e6), prepared.rgb,
                                     prepared.depth_m, given, prepared.depth_m, predictions,
                                     {'frame_number': frame.frame_number})
                count += 1
                bar.update(1)
                if max_frames and count >= max_frames:
                    break
        finally:
            bar.close()
            for f in rs_filters.values():
                f.close()
        if count == 0:
            raise RealSenseError(f'{recording}: no aligned depth + colour frame in the recording')
        report = {
            'tool': 's2ml_realsense_offline',
            'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(),
            'protocol': 'hidden_pixels',
            'input': {'path': str(Path(recording).resolve()), 'sha256': path_sha256(recording),
                      'depth_scale': source.depth_scale,
                      'camera': {**asdict(source.camera.intrinsics),
                                 'distortion_model': source.camera.distortion_model,
                                 'distortion': list(source.camera.distortion)},
                      'unpaired_frames': source.unpaired_frames},
            'model': model_info(predictor),
            'config': {'node_params': asdict(params), 'baselines': list(baselines),
                       'librealsense_filters': list(filters), 'seed': seed,
                       'max_frames': max_frames,
                       'filters_note': 'librealsense filters run on the aligned depth with the '
                                       'hidden pixels removed, default options, in frame order',
                       'hidden_pixels': {'bank_size': planter.bank_size,
                                         'min_fraction': planter.min_fraction}},
            'frame_count': count,
            'overall': evaluation.summary(),
            'error_by_distance': evaluation.error_by_distance(),
            'frames': evaluation.frames,
            'output': {'depth_dir': DEPTH_DIR if save_depth else None,
                       'depth_format': '16-bit PNG, millimetres, 0 = unknown'},
            'wall_time_s': time.time() - started,
        }
        with open(stage.path('report.json'), 'w') as stream:
            json.dump(report, stream, indent=1, allow_nan=False, default=str)
        if html_report:
            with open(stage.path('report.html'), 'w') as stream:
                stream.write(render_html(report, evaluation.maps))
        report['output']['files'] = stage.commit()
    return report


def build_parser() -> argparse.ArgumentParser:
    """:return: The command-line parser."""
    parser = argparse.ArgumentParser(
        prog='s2ml_realsense_offline', description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('recording', help='librealsense recording (.db3 or .bag)')
    parser.add_argument('-o', '--output', default=None,
                        help='output folder (default: <recording>_eval next to it)')
    parser.add_argument('--checkpoint', default=None,
                        help='S2ML .safetensors checkpoint (default: the packaged weights)')
    parser.add_argument('--params-file', default=None, help='node parameter YAML')
    parser.add_argument('--device', default=None, help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--filters', default=','.join(FILTER_NAMES),
                        help="comma-separated librealsense set-ups or 'none' (default: all: "
                        f"{','.join(FILTER_NAMES)})")
    parser.add_argument('--no-depth', action='store_true',
                        help='do not write the completed depth PNGs')
    add_run_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Console entry point ``s2ml_realsense_offline``.

    :param argv: Arguments (default: sys.argv[1:]).
    :return: Exit status (0 ok, 2 bad input, 1 unexpected error).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        params, baselines = run_settings(args)
        filters = [] if args.filters in ('', 'none') else [
            f.strip() for f in args.filters.split(',') if f.strip()]
        output = args.output or str(Path(args.recording).resolve().with_suffix('')) + '_eval'
        predictor = load_predictor(params.checkpoint or None, params.device, params.precision)
        report = evaluate_recording(
            args.recording, output, predictor, params, baselines, filters,
            save_depth=not args.no_depth, max_frames=args.max_frames, seed=args.seed,
            overwrite=args.overwrite, html_report=not args.no_html, progress=not args.quiet)
    except (RealSenseError, BagEvalError, OutputError, ParameterError) as exc:
        print(f's2ml_realsense_offline: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('s2ml_realsense_offline: interrupted; partial outputs removed', file=sys.stderr)
        return 130
    print(f'{report["frame_count"]} frames; hidden-pixel RMSE / MAE / coverage:')
    for name, m in report['overall'].items():
        rmse, mae, cov = m.get('rmse'), m.get('mae'), m.get('coverage')
        print(f'  {name:24s} {_num(rmse)} m  {_num(mae)} m  {_num(cov)}')
    for path in report['output']['files'].values():
        print(f'wrote {path}')
    return 0


def _num(value: Any) -> str:
    return '   n/a' if value is None else f'{value:.4f}'


if __name__ == '__main__':
    sys.exit(main())
