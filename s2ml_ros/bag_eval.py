"""
Evaluate depth completion on a recorded rosbag2 bag, offline and without a ROS install.

``s2ml_bag_eval BAG -o OUT`` reads an MCAP or sqlite3 bag with ``rosbags``, picks the color,
depth and CameraInfo topics (by type and encoding; override with ``--color-topic`` ...), pairs
them by header stamp exactly as the live node does, and runs the frames through the node's own
steps (:func:`s2ml_ros.completion.prepare_frame`, the predictor,
:func:`s2ml_ros.completion.finalize_depth`). It writes into OUT:

- ``<bag name>_completed/``: a copy of the bag with ``depth_completed/image``,
  ``depth_completed/camera_info`` and ``points`` added in the camera namespace (the topics the
  node publishes when it runs in that namespace), so it replays in RViz;
- ``report.json``: model variant and checkpoint hash, node parameters, input bag hash, pairing
  counters, per-frame and overall metrics of S2ML and the classical baselines, latency;
- ``report.html``: the same as tables and plots (error maps, error by distance, hole fraction
  over time, latency histogram).

Scoring uses the ground-truth depth topic when the bag has one (``*gt*`` / ``*ground_truth*``
or ``--gt-topic``); otherwise valid raw pixels are hidden with real hole shapes moved from other
frames and scored (see :mod:`s2ml_ros.offline_eval`). Everything is written under a temporary
name in OUT and renamed at the end; a failed run leaves nothing that looks complete.

Exit status: 0 on success, 2 for bad input (unreadable bag, missing topic, no frame pairs,
outputs that exist), 130 when interrupted, 1 for anything unexpected.
"""

import argparse
from collections import Counter
from dataclasses import asdict, is_dataclass
import datetime
import json
import logging
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from s2ml_ros import conversions as conv
from s2ml_ros.bag_io import (BagEvalError, BagReader, BagWriter, CAMERA_INFO, detect_topics,
                             IMAGE, iter_framesets, MessageFactory, PairingStats, POINT_CLOUD,
                             STORAGES)
from s2ml_ros.completion import apply_predictor_params, finalize_depth, prepare_frame
from s2ml_ros.eval_report import render_html
from s2ml_ros.offline_eval import (Evaluation, HolePlanter, OutputError, path_sha256,
                                   StagedOutput)
from s2ml_ros.params import NodeParams, ParameterError, params_from_mapping

_logger = logging.getLogger(__name__)

#: Baselines run by default (colorization is slow on full-size frames: opt in).
DEFAULT_BASELINES = ('nearest', 'telea', 'navier_stokes', 'guided')
REFERENCE = 's2ml'
# Topics the node publishes, relative to its namespace (s2ml_ros/node.py).
OUT_DEPTH = 'depth_completed/image'
OUT_INFO = 'depth_completed/camera_info'
OUT_CLOUD = 'points'


def load_params_file(path: str) -> Dict[str, Any]:
    """
    Read node parameters from a ROS parameter YAML file (``node: ros__parameters: ...``).

    :param path: YAML file, as given to ``--ros-args --params-file``; a flat mapping works too.
    :return: Parameter name -> value.
    :raises BagEvalError: When the file cannot be read or has no parameters.
    """
    import yaml
    try:
        with open(path) as stream:
            doc = yaml.safe_load(stream) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BagEvalError(f'{path}: cannot read the parameter file: {exc}') from exc
    if not isinstance(doc, dict):
        raise BagEvalError(f'{path}: expected a mapping of parameters')
    for value in doc.values():
        if isinstance(value, dict) and isinstance(value.get('ros__parameters'), dict):
            return dict(value['ros__parameters'])
    return doc


def load_predictor(checkpoint: Optional[str], device: str, precision: str) -> Any:
    """
    Load the predictor the node would load.

    :param checkpoint: Checkpoint path, or None for the packaged default weights.
    :param device: 'auto', 'cpu', 'cuda', ...
    :param precision: 'fp32', 'fp16' or 'bf16'.
    :return: A ``DepthCompletionPredictor`` with ``keep_measured`` as the node sets it.
    :raises BagEvalError: For a missing checkpoint or no default weights.
    """
    from s2ml_ros.pipeline import DefaultWeightsMissingError, DepthCompletionPredictor
    if checkpoint and not Path(checkpoint).expanduser().is_file():
        raise BagEvalError(f'{checkpoint}: checkpoint file does not exist')
    try:
        return DepthCompletionPredictor.from_checkpoint(
            str(Path(checkpoint).expanduser()) if checkpoint else None, device=device,
            precision=precision)
    except DefaultWeightsMissingError as exc:
        raise BagEvalError(
            f'no --checkpoint given and no default weights are installed ({exc}); pass '
            '--checkpoint PATH.safetensors') from exc
    except (ValueError, OSError, RuntimeError) as exc:
        raise BagEvalError(f'cannot load the model: {exc}') from exc


def model_info(predictor: Any) -> Dict[str, Any]:
    """:return: JSON-ready description of the predictor's checkpoint."""
    info = predictor.info
    config = info.config
    return {
        'variant': info.variant, 'checkpoint': str(info.path), 'sha256': info.sha256,
        'config': asdict(config) if is_dataclass(config) else dict(config),
        'provenance': dict(getattr(info, 'provenance', {}) or {}),
        'device': str(getattr(predictor, 'device', '')),
        'precision': str(getattr(predictor, 'precision', '')),
    }


def camera_namespace(selection) -> str:
    """
    Namespace shared by the color and depth topics (``/camera/camera`` for realsense-ros).

    :return: The namespace, '' for the root.
    """
    a = selection.color.strip('/').split('/')[:-2]
    b = selection.depth.strip('/').split('/')[:-2]
    common = []
    for x, y in zip(a, b):
        if x != y:
            break
        common.append(x)
    return '/' + '/'.join(common) if common else ''


def select_baselines(names: str) -> List[str]:
    """
    Parse a --baselines value.

    :param names: Comma-separated names, 'all' or 'none'.
    :return: Baseline names from :data:`s2ml_ros.baselines.BASELINES`.
    """
    from s2ml_ros.baselines import BASELINES
    if names in ('', 'none'):
        return []
    chosen = list(BASELINES) if names == 'all' else [n.strip() for n in names.split(',') if n]
    unknown = [n for n in chosen if n not in BASELINES]
    if unknown:
        raise BagEvalError(f'unknown baseline(s) {unknown}; available: {list(BASELINES)}')
    return chosen


def evaluate_bag(bag_path: str, output_dir: str, predictor: Any, params: NodeParams,
                 topics: Optional[Dict[str, Optional[str]]] = None,
                 baselines: Sequence[str] = DEFAULT_BASELINES, write_bag: bool = True,
                 output_storage: str = 'same', output_namespace: Optional[str] = None,
                 max_frames: int = 0, seed: int = 0, overwrite: bool = False,
                 html_report: bool = True, progress: bool = True) -> Dict[str, Any]:
    """
    Evaluate one bag and write the outputs (see the module docstring).

    :param bag_path: Bag folder or .mcap / .db3 file.
    :param output_dir: Output folder.
    :param predictor: A loaded ``DepthCompletionPredictor``.
    :param params: Node parameters (sync, depth scale and range, output encoding, cloud).
    :param topics: Optional 'color', 'depth', 'camera_info', 'ground_truth' overrides
        (ground_truth '' = ignore any ground truth).
    :param baselines: Names from :data:`s2ml_ros.baselines.BASELINES`.
    :param write_bag: Write the completed bag.
    :param output_storage: 'mcap', 'sqlite3' or 'same' (as the input).
    :param output_namespace: Namespace of the new topics; None = the camera namespace.
    :param max_frames: Evaluate at most this many frame sets (0 = all); every message is still
        copied.
    :param seed: Seed of the hidden-pixel protocol.
    :param overwrite: Replace existing outputs.
    :param html_report: Also write report.html.
    :param progress: Show a progress bar.
    :return: The JSON report (also written to report.json).
    :raises BagEvalError: For unusable input; :class:`OutputError` for unusable outputs.
    """
    from s2ml_ros.baselines import BASELINES
    from tqdm import tqdm

    started = time.time()
    bag_name = Path(bag_path).name
    for suffix in ('.mcap', '.db3'):
        if bag_name.endswith(suffix):
            bag_name = bag_name[:-len(suffix)]
    out_bag = f'{bag_name}_completed'
    names = ([out_bag] if write_bag else []) + ['report.json'] + (
        ['report.html'] if html_report else [])
    topics = topics or {}
    with BagReader(bag_path) as bag, StagedOutput(output_dir, names, overwrite) as stage:
        selection = detect_topics(bag, topics.get('color'), topics.get('depth'),
                                  topics.get('camera_info'), topics.get('ground_truth'))
        protocol = 'ground_truth' if selection.ground_truth else 'hidden_pixels'
        namespace = camera_namespace(selection) if output_namespace is None \
            else '/' + output_namespace.strip('/') if output_namespace.strip('/') else ''
        new_topics = {k: f'{namespace}/{v}' for k, v in (
            ('depth', OUT_DEPTH), ('camera_info', OUT_INFO), ('points', OUT_CLOUD))}
        clash = sorted(set(new_topics.values()) & set(bag.topics()))
        if write_bag and clash:
            raise BagEvalError(
                f'{bag_path}: already has the output topic(s) {clash}; evaluate the original '
                'bag or pass --output-namespace')
        storage = bag.storage if output_storage == 'same' else output_storage
        if storage not in STORAGES:
            raise BagEvalError(f'unknown output storage {storage!r}; accepted: {STORAGES}')
        writer = BagWriter(str(stage.path(out_bag)), storage) if write_bag else None
        factory = MessageFactory(writer.typestore if writer else None)
        methods = [REFERENCE] + list(baselines)
        evaluation = Evaluation(methods, protocol)
        planter = HolePlanter(seed)
        stats = PairingStats()
        skipped: Counter = Counter()
        published = Counter()
        total = bag.topics()[selection.depth][1]
        if max_frames:
            total = min(total, max_frames)
        bar = tqdm(total=total, unit='frame', disable=not progress, desc=bag_name,
                   file=sys.stderr)
        evaluated = 0
        try:
            def copy(conn: Any, log_time_ns: int, raw: bytes) -> None:
                writer.copy(conn, log_time_ns, raw, bag.reader.typestore)

            for fs in iter_framesets(bag, selection, params, stats,
                                     on_message=copy if writer else None):
                if max_frames and evaluated >= max_frames:
                    continue
                try:
                    frame = prepare_frame(fs.color, fs.depth, fs.info, params)
                    gt = None
                    if fs.ground_truth is not None:
                        gt = conv.depth_to_meters(fs.ground_truth, params.depth_scale)
                except conv.ConversionError as exc:
                    skipped['undecodable_frame'] += 1
                    _logger.warning('frame %d: %s; skipped', fs.index, exc)
                    continue
                if gt is not None and gt.shape != frame.depth_m.shape:
                    skipped['ground_truth_size_mismatch'] += 1
                    continue
                # What the node publishes for this frame.
                t0 = time.perf_counter()
                apply_predictor_params(predictor, params)
                completed = predictor.predict(frame.rgb, frame.depth_m)
                latency = time.perf_counter() - t0
                depth_out, _ = finalize_depth(completed, frame.depth_m, params, with_mask=False)
                if writer is not None:
                    _write_outputs(writer, factory, new_topics, fs, frame, depth_out, params,
                                   published)
                # Scoring.
                if gt is not None:
                    given, target = frame.depth_m, gt
                    predictions = {REFERENCE: (depth_out, latency)}
                else:
                    given, hidden = planter.plant(frame.depth_m)
                    target = frame.depth_m
                    t0 = time.perf_counter()
                    scored = predictor.predict(frame.rgb, given)
                    scored_latency = time.perf_counter() - t0
                    predictions = {REFERENCE: (
                        finalize_depth(scored, given, params, with_mask=False)[0],
                        0.5 * (latency + scored_latency))}
                for name in baselines:
                    t0 = time.perf_counter()
                    filled = BASELINES[name](frame.rgb, given)
                    predictions[name] = (filled, time.perf_counter() - t0)
                evaluation.add_frame(fs.index, fs.stamp_ns, frame.rgb, frame.depth_m, given,
                                     target, predictions, {'resized': bool(frame.resized)})
                evaluated += 1
                bar.update(1)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        if stats.matched == 0:
            raise BagEvalError(
                f'{bag_path}: no color/depth pair matched (color {selection.color}: '
                f'{stats.messages[selection.color]} messages, depth {selection.depth}: '
                f'{stats.messages[selection.depth]}; skipped for bad encoding: '
                f'{dict(stats.bad_encoding)}, undecodable: {dict(stats.undecodable)}); check '
                'the topics, or that the header stamps are within sync_slop_s '
                f'({params.sync_slop_s} s)')
        if evaluated == 0:
            raise BagEvalError(
                f'{bag_path}: {stats.matched} frame pairs matched but none could be evaluated '
                f'({dict(skipped)})')
        report = {
            'tool': 's2ml_bag_eval',
            'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(),
            'protocol': protocol,
            'input': {'path': str(Path(bag_path).resolve()), 'sha256': path_sha256(bag_path),
                      'storage': bag.storage, 'message_count': bag.message_count,
                      'topics': asdict(selection)},
            'model': model_info(predictor),
            'config': {'node_params': asdict(params), 'baselines': list(baselines),
                       'seed': seed, 'max_frames': max_frames,
                       'hidden_pixels': None if gt_protocol(protocol) else {
                           'bank_size': planter.bank_size, 'min_fraction': planter.min_fraction,
                           'max_offset': 'a quarter of the image size'}},
            'pairing': stats.as_dict(),
            'skipped': dict(skipped),
            'frame_count': evaluated,
            'overall': evaluation.summary(),
            'error_by_distance': evaluation.error_by_distance(),
            'frames': evaluation.frames,
            'output': {'bag': out_bag if write_bag else None,
                       'storage': storage if write_bag else None,
                       'topics': new_topics if write_bag else {},
                       'messages_added': dict(published)},
            'wall_time_s': time.time() - started,
        }
        with open(stage.path('report.json'), 'w') as stream:
            json.dump(report, stream, indent=1, allow_nan=False, default=str)
        if html_report:
            with open(stage.path('report.html'), 'w') as stream:
                stream.write(render_html(report, evaluation.maps))
        report['output']['files'] = stage.commit()
    return report


def gt_protocol(protocol: str) -> bool:
    """:return: True for the ground-truth protocol."""
    return protocol == 'ground_truth'


def _write_outputs(writer: BagWriter, factory: MessageFactory, topics: Dict[str, str], fs: Any,
                   frame: Any, depth_out: np.ndarray, params: NodeParams,
                   published: Counter) -> None:
    """Write the completed depth, its CameraInfo and the point cloud, as the node publishes."""
    from s2ml_ros.pointcloud import build_cloud
    header = fs.depth.header
    t = fs.log_time_ns
    writer.write(topics['depth'], IMAGE, t,
                 factory.image(conv.depth_image_fields(depth_out, params.output_encoding),
                               header))
    published[topics['depth']] += 1
    if frame.intrinsics is None:
        return
    writer.write(topics['camera_info'], CAMERA_INFO, t, factory.camera_info(
        conv.camera_info_fields(frame.intrinsics, fs.info), header))
    published[topics['camera_info']] += 1
    if params.publish_cloud:
        cloud = build_cloud(depth_out, frame.intrinsics, frame.rgb if params.cloud_rgb else None,
                            params.cloud_decimation)
        writer.write(topics['points'], POINT_CLOUD, t, factory.point_cloud(cloud, header))
        published[topics['points']] += 1


def build_parser() -> argparse.ArgumentParser:
    """:return: The command-line parser."""
    parser = argparse.ArgumentParser(
        prog='s2ml_bag_eval', description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('bag', help='rosbag2 bag folder, or a single .mcap / .db3 file')
    parser.add_argument('-o', '--output', default=None,
                        help='output folder (default: <bag>_eval next to the bag)')
    parser.add_argument('--checkpoint', default=None,
                        help='S2ML .safetensors checkpoint (default: the packaged weights)')
    parser.add_argument('--params-file', default=None,
                        help='node parameter YAML (config/s2ml.yaml): the same sync, depth '
                        'scale, depth range and output settings as the live node')
    parser.add_argument('--device', default=None, help='auto, cpu, cuda, cuda:N (overrides '
                        'the parameter file)')
    parser.add_argument('--precision', default=None, help='fp32, fp16 or bf16')
    parser.add_argument('--color-topic', default=None, help='color Image topic')
    parser.add_argument('--depth-topic', default=None, help='raw depth Image topic')
    parser.add_argument('--info-topic', default=None, help='color CameraInfo topic')
    gt = parser.add_mutually_exclusive_group()
    gt.add_argument('--gt-topic', default=None, help='ground-truth depth Image topic')
    gt.add_argument('--no-gt', action='store_true',
                    help='ignore any ground-truth topic (use the hidden-pixel protocol)')
    parser.add_argument('--output-storage', default='same', choices=('same',) + STORAGES,
                        help='storage of the completed bag (default: as the input)')
    parser.add_argument('--output-namespace', default=None,
                        help='namespace of the added topics (default: the camera namespace)')
    parser.add_argument('--no-bag', action='store_true', help='do not write the completed bag')
    add_run_arguments(parser)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every offline evaluator shares (baselines, report, frames, seed, ...)."""
    parser.add_argument('--baselines', default=','.join(DEFAULT_BASELINES),
                        help="comma-separated baselines, 'all' or 'none' (default: "
                        f"{','.join(DEFAULT_BASELINES)})")
    parser.add_argument('--no-html', action='store_true', help='do not write report.html')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='evaluate at most this many frames (default: 0 = all)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the hidden-pixel protocol (default: 0)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bar')


def run_settings(args: argparse.Namespace) -> Tuple[NodeParams, List[str]]:
    """
    Node parameters (file, then command-line overrides) and baselines of an evaluator run.

    :param args: Parsed options with ``params_file``, ``baselines`` and any of ``device``,
        ``precision``, ``checkpoint``.
    :return: (validated node parameters, baseline names).
    """
    values = load_params_file(args.params_file) if args.params_file else {}
    for key in ('device', 'precision', 'checkpoint'):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return params_from_mapping(values), select_baselines(args.baselines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Console entry point ``s2ml_bag_eval``.

    :param argv: Arguments (default: sys.argv[1:]).
    :return: Exit status (0 ok, 2 bad input, 1 unexpected error).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        params, baselines = run_settings(args)
        output = args.output or str(Path(args.bag).resolve().parent / (
            Path(args.bag).name.split('.')[0] + '_eval'))
        predictor = load_predictor(params.checkpoint or None, params.device, params.precision)
        topics = {'color': args.color_topic, 'depth': args.depth_topic,
                  'camera_info': args.info_topic,
                  'ground_truth': '' if args.no_gt else args.gt_topic}
        report = evaluate_bag(
            args.bag, output, predictor, params, topics, baselines,
            write_bag=not args.no_bag, output_storage=args.output_storage,
            output_namespace=args.output_namespace, max_frames=args.max_frames, seed=args.seed,
            overwrite=args.overwrite, html_report=not args.no_html, progress=not args.quiet)
    except (BagEvalError, OutputError, ParameterError) as exc:
        print(f's2ml_bag_eval: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('s2ml_bag_eval: interrupted; partial outputs removed', file=sys.stderr)
        return 130
    ref = report['overall'][REFERENCE]
    print(f'{report["frame_count"]} frames, protocol {report["protocol"]}: S2ML hole RMSE '
          f'{_num(ref.get("rmse"))} m, MAE {_num(ref.get("mae"))} m, latency mean '
          f'{_num(ref["latency_ms"]["mean"])} ms')
    for name, path in report['output']['files'].items():
        print(f'wrote {path}')
    return 0


def _num(value: Any) -> str:
    return 'n/a' if value is None else f'{value:.4g}'


if __name__ == '__main__':
    sys.exit(main())
