"""
Train S2ML: single process, or DDP under torchrun (nccl on GPU, gloo on CPU).

Examples, from the repository root::

    # simulated data, one process (CPU or one GPU)
    python -m training.train -c training/configs/sim_tiny.yaml
    # NYU-Depth V2 labelled set on 4 GPUs
    torchrun --nproc_per_node=4 -m training.train -c training/configs/nyu_base.yaml \
        --data-path /data/nyu_depth_v2_labeled.mat
    # CPU DDP smoke run with two processes
    torchrun --nproc_per_node=2 -m training.train -c training/configs/smoke.yaml --device cpu
    # resume: continue from the last checkpoint of a run
    python -m training.train -c training/configs/sim_tiny.yaml --resume auto

Writes to ``--output-dir``: ``last.safetensors`` / ``best.safetensors`` (the node's checkpoint
format), ``last.train_state.pt`` (optimizer, scaler, epoch, step; plain tensors and dicts,
loaded with weights_only=True), and ``metrics.csv`` (one row per epoch).
"""

import argparse
import contextlib
import csv
import dataclasses
import math
import os
from pathlib import Path
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from s2ml_ros.metrics import DepthMetricAccumulator
from s2ml_ros.model import get_config, load_checkpoint, S2ML, save_checkpoint
from s2ml_ros.model.config import (ConfigError, FILL_GUIDES, FILL_SOLVERS, INITIAL_FILLS,
                                   PARAMETER_FREE_FIELDS, S2MLConfig)
from s2ml_ros.simulation import check_share
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm
import yaml

from . import datasets as ds
from .dist import all_reduce_sum, barrier, cleanup, DistInfo, init_distributed
from .losses import JointLoss, PIXEL_LOSSES
from .transforms import (BorderCrop, BorderHoles, CameraColour, CenterCrop,
                         check_planted_zoom, Compose, DeadLeavesTexture, PaintedDecals,
                         PlantedHoles, RandomDepthScale, Resize, SensorHoles, SmoothDepthWarp,
                         train_transform)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """:return: The argument parser; a YAML config (-c) overrides its defaults."""
    p = argparse.ArgumentParser(description='Train S2ML depth completion', add_help=add_help)
    p.add_argument('-c', '--config', default=None, help='YAML file of option defaults')
    p.add_argument('--variant', default='tiny', help='model variant (s2ml_ros.model)')
    p.add_argument('--initial-fill', default=None, choices=list(INITIAL_FILLS),
                   help="override the variant's initial depth D_0 (parameter-free)")
    p.add_argument('--fill-iterations', type=int, default=None,
                   help="override the guided multigrid fill's full-resolution sweeps")
    p.add_argument('--fill-solver', default=None, choices=list(FILL_SOLVERS),
                   help="override the guided multigrid fill's sweeps (sor or jacobi)")
    p.add_argument('--fill-guide', default=None, choices=list(FILL_GUIDES),
                   help="override the guided multigrid fill's guide image (chroma, rgb or gray)")
    p.add_argument('--depth-scale-cap', type=float, default=None, metavar='METERS',
                   help='override the depth_scale_cap_m of the model config: frames whose '
                        'measured depth has a 90th percentile beyond this are scaled down to '
                        'it inside the model (0 = off)')
    p.add_argument('--far-change-cap', type=float, default=None, metavar='SHARE',
                   help='override the far_change_cap of the model config: no output pixel '
                        'farther than (1 + SHARE) times the initial fill (0 = off)')
    p.add_argument('--num-pairs', type=int, default=None,
                   help="override the variant's number of fusion pairs K")
    p.add_argument('--data', default='sim', choices=['sim', 'nyu', 'sun', 'folder', 'bag'],
                   help='training data source')
    p.add_argument('--data-path', default=None,
                   help='dataset file or folder; a rosbag2 bag for --data bag (not for sim)')
    p.add_argument('--color-topic', default=None, help='bag colour topic (default: detect)')
    p.add_argument('--depth-topic', default=None, help='bag raw depth topic (default: detect)')
    p.add_argument('--info-topic', default=None, help='bag CameraInfo topic (default: detect)')
    p.add_argument('--gt-topic', default=None,
                   help="bag ground-truth depth topic (default: detect; '' for none)")
    p.add_argument('--bag-every', type=int, default=1, help='keep every n-th bag frame')
    p.add_argument('--extra-holes', default=None,
                   help='real data: add the holes of this simulated sensor preset over measured '
                   'pixels (e.g. structured_light), so frames without ground truth can train')
    p.add_argument('--planted-holes', type=float, default=0.0,
                   help='probability of also hiding measured input pixels under the hole shape '
                   'of the same frame, moved (teaches continuation of surfaces; 0: off)')
    p.add_argument('--planted-zoom', type=float, default=1.0,
                   help='--planted-holes shapes are also enlarged by a log-uniform factor in '
                   '[1, this] (at most 8; 1: never)')
    p.add_argument('--border-holes', type=float, default=0.0,
                   help='probability of blanking bands along the input border, as registration '
                   'to a wider colour view leaves (before --planted-holes; 0: off)')
    p.add_argument('--border-hexagon', type=float, default=0.0,
                   help='share of --border-holes bands cut as two sides of a hexagon, widest at '
                   'the corners, as an Azure Kinect NFOV depth view registered to colour leaves '
                   '(0: all straight)')
    p.add_argument('--nyu-splits', default=None, help='splits.mat of NYU-Depth V2')
    p.add_argument('--sun-train-list', default=None, help='SUN RGB-D training frame list')
    p.add_argument('--sun-val-list', default=None, help='SUN RGB-D validation frame list')
    p.add_argument('--sensors', nargs='+', default=['structured_light'],
                   help='simulated sensor presets, cycled over samples')
    p.add_argument('--train-samples', type=int, default=2000, help='simulated training frames')
    p.add_argument('--val-samples', type=int, default=64, help='simulated validation frames')
    p.add_argument('--sensor-variation', type=float, default=0.0,
                   help='vary the range, dropout and noise of the simulated sensors per training '
                   'frame around the presets (1: the documented ranges; 0: presets exactly)')
    p.add_argument('--camouflage', type=float, default=0.0,
                   help='share of simulated matte and textured objects given the look of the '
                   'walls, the floor or another object, so that some depth edges have no colour '
                   'edge (training frames only; 0: the rooms as drawn)')
    p.add_argument('--level-views', type=float, default=0.0,
                   help='share of simulated training frames whose camera is held about level '
                   '(0.4-1.8 m high, ceiling and far walls in view) instead of looking down at '
                   'furniture (training frames only; 0: always looking down)')
    p.add_argument('--clutter', type=float, default=0.0,
                   help='share of simulated training rooms crowded with objects on every '
                   'furniture top, on the floor and on wall shelves (training frames only; 0: '
                   'the rooms as drawn)')
    p.add_argument('--sim-cache', default=None,
                   help='folder caching rendered simulated frames across epochs')
    p.add_argument('--sim-size', type=int, nargs=2, default=[320, 240], metavar=('W', 'H'),
                   help='simulated frame size')
    p.add_argument('--sim-seed-offset', type=int, default=0,
                   help='first simulated training seed: training item i renders seed OFFSET + i, '
                   'so a later stage can train on rooms an earlier one never saw (0: seeds 0 up)')
    p.add_argument('--resize', type=int, nargs=2, default=None, metavar=('W', 'H'),
                   help='resize real frames (after the border crop) to this size')
    p.add_argument('--border-crop', type=int, nargs=4, default=None,
                   metavar=('TOP', 'BOTTOM', 'LEFT', 'RIGHT'), help='cut a border first')
    p.add_argument('--crop', type=int, nargs=2, default=[256, 192], metavar=('W', 'H'),
                   help='random training crop')
    p.add_argument('--scale', type=float, nargs=2, default=[1.0, 1.5],
                   help='random scale range (depth divided by the factor)')
    p.add_argument('--jitter', type=float, default=0.4, help='colour jitter strength')
    p.add_argument('--depth-scale', type=float, nargs=2, default=[1.0, 1.0],
                   metavar=('LOW', 'HIGH'),
                   help='multiply the depths of a share of the training frames by a factor drawn '
                   'log-uniformly from [LOW, HIGH], colour and intrinsics unchanged (the room '
                   'scaled about the camera; 1 1: off)')
    p.add_argument('--depth-scale-p', type=float, default=0.5,
                   help='share of training frames --depth-scale applies to')
    p.add_argument('--depth-warp', type=float, default=0.0,
                   help='share of training frames whose depth and ground truth are multiplied by '
                        'a smooth random field, so surfaces are not exact planes (0: off)')
    p.add_argument('--depth-warp-amplitude', type=float, default=0.05,
                   help='largest amplitude of the --depth-warp field, a share of the depth in '
                        '(0, 0.5): its standard deviation stays below it, no depth moves by more '
                        'than twice it')
    p.add_argument('--decals', type=float, default=0.0,
                   help='probability of painting flat shapes on the colour image only, so '
                        'colour edges stop implying depth edges (0: off)')
    p.add_argument('--dead-leaves', type=float, default=0.0,
                   help='probability of laying dead-leaves texture patches (edges of every '
                        'size, as on real wood, carpet and print) on the colour image only '
                        '(0: off)')
    p.add_argument('--colour-dropout', type=float, default=0.0,
                   help='share of training frames whose colour the network does not see (a '
                        'flat image at the normalisation mean; the initial fill keeps the '
                        'true colour), so it also learns to complete depth from depth (0: off)')
    p.add_argument('--camera-colour', type=float, default=0.0,
                   help='probability of each colour camera effect: gamma, blur, noise, a '
                        'colour-to-depth shift of up to 2 px (0: off)')
    p.add_argument('--batch-size', type=int, default=8, help='per process')
    p.add_argument('--epochs', type=int, default=50, help='total epochs')
    p.add_argument('--max-steps', type=int, default=0, help='stop after this many steps (0: off)')
    p.add_argument('--lr', type=float, default=2e-4, help='peak learning rate')
    p.add_argument('--min-lr', type=float, default=1e-6, help='final cosine learning rate')
    p.add_argument('--weight-decay', type=float, default=1e-4, help='AdamW weight decay')
    p.add_argument('--warmup-epochs', type=float, default=3.0, help='linear warm-up length')
    p.add_argument('--grad-clip', type=float, default=1.0, help='gradient norm clip (0: off)')
    p.add_argument('--freq-weight', type=float, default=0.1, help='frequency loss weight')
    p.add_argument('--pixel-loss', default='l1', choices=list(PIXEL_LOSSES),
                   help="per-pixel term of the joint loss: 'l1' (the paper's), 'berhu' "
                        "(L2 beyond 0.2 x the largest error) or 'l2' (squared error): "
                        'lower RMSE in ambiguous holes')
    p.add_argument('--berhu-threshold', type=float, default=0.0, metavar='M',
                   help='a fixed threshold of --pixel-loss berhu, meters (0: 0.2 x the '
                        "batch's largest error)")
    p.add_argument('--hole-weight', type=float, default=0.0,
                   help='extra L1 weight on raw-depth holes (0: the plain joint loss)')
    p.add_argument('--planted-weight', type=float, default=0.0,
                   help='extra L1 weight on pixels hidden by --planted-holes')
    p.add_argument('--planted-berhu', type=float, default=0.0, metavar='M',
                   help='on pixels hidden by --planted-holes, errors beyond M meters are '
                        'squared (reverse Huber), pulling a pixel that could lie on either '
                        'side of a depth edge towards the mean depth, where RMSE is lowest '
                        '(0: off)')
    p.add_argument('--change-weight', type=float, default=0.0,
                   help="L1 penalty on each stage's change to the initial fill D_0 over the "
                        'holes, in [0, 1): a hole pixel leaves D_0 only where the loss '
                        'expects more than this share of its weight back (0: off)')
    p.add_argument('--early-stage-weight', type=float, default=0.5,
                   help='loss weight of non-final stages')
    p.add_argument('--amp', default='auto', choices=['auto', 'off', 'bf16', 'fp16'],
                   help='mixed precision on CUDA (auto: bf16 if supported, else fp16)')
    p.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda'")
    p.add_argument('--workers', type=int, default=2, help='data loader workers per process')
    p.add_argument('--eval-every', type=int, default=1, help='validate every N epochs')
    p.add_argument('--output-dir', default='runs/s2ml', help='checkpoints and logs')
    p.add_argument('--init-from', default=None,
                   help='start from these weights (fine-tuning; new optimizer and schedule)')
    p.add_argument('--resume', default=None,
                   help="checkpoint to resume from ('auto': <output-dir>/last.safetensors)")
    p.add_argument('--seed', type=int, default=0, help='seed of init and augmentation')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    return p


def loss_function(args: argparse.Namespace) -> JointLoss:
    """
    Build the joint loss from the command line's loss options.

    :raises ValueError: For an invalid weight or threshold, naming it.
    """
    return JointLoss(early_weight=args.early_stage_weight, freq_weight=args.freq_weight,
                     hole_weight=args.hole_weight, planted_weight=args.planted_weight,
                     pixel_loss=args.pixel_loss, change_weight=args.change_weight,
                     planted_berhu_m=args.planted_berhu, berhu_threshold_m=args.berhu_threshold)


def model_config(args: argparse.Namespace) -> S2MLConfig:
    """
    Build the variant's config with the command line's overrides.

    :raises ConfigError: For an unknown variant or an invalid override, naming it.
    """
    overrides = {'initial_fill': args.initial_fill or None,
                 'fill_iterations': args.fill_iterations, 'fill_solver': args.fill_solver,
                 'fill_guide': args.fill_guide, 'depth_scale_cap_m': args.depth_scale_cap,
                 'far_change_cap': args.far_change_cap, 'num_pairs': args.num_pairs}
    return dataclasses.replace(get_config(args.variant),
                               **{k: v for k, v in overrides.items() if v is not None})


def _learned_fields(config: Any) -> Dict[str, Any]:
    """:return: The config fields that decide the shapes and meaning of the weights."""
    free = PARAMETER_FREE_FIELDS + ('variant',)
    return {k: v for k, v in config.to_dict().items() if k not in free}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse ``argv``, with the YAML file given by -c as defaults."""
    parser = get_args_parser()
    args, _ = parser.parse_known_args(argv)
    if args.config:
        with open(args.config) as f:
            cfg = yaml.safe_load(f) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted({k.replace('-', '_') for k in cfg} - known)
        if unknown:
            parser.error(f'{args.config}: unknown options {unknown}')
        parser.set_defaults(**{k.replace('-', '_'): v for k, v in cfg.items()})
    args = parser.parse_args(argv)
    if args.planted_weight and not args.planted_holes:
        parser.error(f'--planted-weight {args.planted_weight} weights pixels that only '
                     '--planted-holes P > 0 hides; it is 0')
    if args.planted_berhu and not args.planted_holes:
        parser.error(f'--planted-berhu {args.planted_berhu} shapes the loss of pixels that '
                     'only --planted-holes P > 0 hides; it is 0')
    try:
        check_planted_zoom(args.planted_zoom)
    except ValueError as exc:
        parser.error(f'--planted-zoom: {exc}')
    if args.planted_zoom != 1.0 and not args.planted_holes:
        parser.error(f'--planted-zoom {args.planted_zoom} enlarges shapes that only '
                     '--planted-holes P > 0 moves; it is 0')
    if not args.sensor_variation >= 0:
        parser.error(f'--sensor-variation must be >= 0 (0 = the presets), '
                     f'got {args.sensor_variation}')
    if args.sensor_variation and args.data != 'sim':
        parser.error(f'--sensor-variation {args.sensor_variation} varies simulated sensors; '
                     f'--data is {args.data}')
    if not 0 <= args.sim_seed_offset <= ds.SIM_TEST_SEED_BASE - args.train_samples:
        parser.error(f'--sim-seed-offset must be in [0, {ds.SIM_TEST_SEED_BASE} - '
                     f'--train-samples] so that training seeds stay below the validation and '
                     f'test seeds, got {args.sim_seed_offset}')
    if args.sim_seed_offset and args.data != 'sim':
        parser.error(f'--sim-seed-offset {args.sim_seed_offset} picks simulated rooms; '
                     f'--data is {args.data}')
    if args.border_hexagon and not args.border_holes:
        parser.error(f'--border-hexagon {args.border_hexagon} shapes bands that only '
                     '--border-holes P > 0 draws; it is 0')
    if not 0.0 <= args.dead_leaves <= 1.0:
        parser.error(f'--dead-leaves must be a probability in [0, 1], got {args.dead_leaves}')
    if not 0.0 <= args.colour_dropout <= 1.0:
        parser.error(f'--colour-dropout must be a share in [0, 1], got {args.colour_dropout}')
    low, high = args.depth_scale
    if not 0 < low <= high:
        parser.error(f'--depth-scale needs 0 < LOW <= HIGH, got {low} {high}')
    if not 0.0 <= args.depth_warp <= 1.0:
        parser.error(f'--depth-warp must be a probability in [0, 1], got {args.depth_warp}')
    if not 0.0 < args.depth_warp_amplitude < 0.5:
        parser.error(f'--depth-warp-amplitude must be in (0, 0.5), got '
                     f'{args.depth_warp_amplitude}')
    if not 0.0 <= args.depth_scale_p <= 1.0:
        parser.error(f'--depth-scale-p must be in [0, 1], got {args.depth_scale_p}')
    try:
        # The model config checks its own fields; building it here names a bad override at
        # start-up rather than after the data sets are built.
        model_config(args)
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        # Likewise the loss checks its own weights and thresholds.
        loss_function(args)
    except ValueError as exc:
        parser.error(f'loss options: {exc}')
    for flag, share, sim_only in (
            ('--border-hexagon', args.border_hexagon, None),
            ('--camouflage', args.camouflage, 'recolours simulated rooms'),
            ('--level-views', args.level_views, 'poses the simulated camera'),
            ('--clutter', args.clutter, 'adds objects to simulated rooms')):
        try:
            check_share(flag, share)
        except ValueError as exc:
            parser.error(str(exc))
        if sim_only and share and args.data != 'sim':
            parser.error(f'{flag} {share} {sim_only}; --data is {args.data}')
    return args


def build_datasets(args: argparse.Namespace) -> Tuple[Dataset, Dataset]:
    """:return: (training set with augmentation, validation set without)."""
    cw, ch = args.crop
    aug = train_transform(cw, ch, tuple(args.scale), args.jitter)
    pre = []
    if args.border_crop:
        pre.append(BorderCrop(*args.border_crop))
    if args.resize:
        pre.append(Resize(*args.resize))
    holes: List[Any] = [SensorHoles(args.extra_holes)] if args.extra_holes else []
    if args.border_holes > 0:
        holes.append(BorderHoles(args.border_holes, hexagon_p=args.border_hexagon))
    if args.planted_holes > 0:
        holes.append(PlantedHoles(args.planted_holes, max_zoom=args.planted_zoom))
    colour: List[Any] = [PaintedDecals(args.decals)] if args.decals > 0 else []
    if args.dead_leaves > 0:
        colour.append(DeadLeavesTexture(args.dead_leaves))
    if args.camera_colour > 0:
        colour.append(CameraColour(args.camera_colour))
    depth: List[Any] = []
    if tuple(args.depth_scale) != (1.0, 1.0) and args.depth_scale_p > 0:
        depth.append(RandomDepthScale(*args.depth_scale, p=args.depth_scale_p))
    if args.depth_warp > 0:
        depth.append(SmoothDepthWarp(args.depth_warp, args.depth_warp_amplitude))
    train_tf = Compose(pre + holes + aug.transforms + colour + depth)
    val_tf = Compose(pre) if pre else None
    if args.data == 'sim':
        w, h = args.sim_size
        train = ds.SimulatedRgbd(args.train_samples, w, h, args.sensors, 'train',
                                 seed_offset=args.sim_seed_offset, transform=train_tf,
                                 seed=args.seed, cache_dir=args.sim_cache,
                                 sensor_variation=args.sensor_variation,
                                 camouflage=args.camouflage, level_views=args.level_views,
                                 clutter=args.clutter)
        # Validation: simulated test-range seeds offset away from the fixed test set.
        val = ds.SimulatedRgbd(args.val_samples, w, h, args.sensors, 'test',
                               seed_offset=500_000, transform=val_tf)
        return train, val
    if args.data_path is None:
        raise SystemExit(f'--data-path is required for --data {args.data}')
    if args.data == 'nyu':
        train = ds.NyuDepthV2Labeled(args.data_path, 'train', args.nyu_splits, train_tf,
                                     args.seed)
        val = ds.NyuDepthV2Labeled(args.data_path, 'test', args.nyu_splits, val_tf)
    elif args.data == 'sun':
        train = ds.SunRgbd(args.data_path, args.sun_train_list, train_tf, args.seed)
        val = ds.SunRgbd(args.data_path, args.sun_val_list, val_tf)
    elif args.data == 'bag':
        bag_args = {'color_topic': args.color_topic, 'depth_topic': args.depth_topic,
                    'info_topic': args.info_topic, 'gt_topic': args.gt_topic,
                    'every': args.bag_every}
        train = ds.RosbagFrames(args.data_path, transform=train_tf, seed=args.seed, **bag_args)
        val = ds.RosbagFrames(args.data_path, transform=Compose(
            pre + holes + [CenterCrop(cw, ch)]), **bag_args)
    else:
        train = ds.RgbdFolder(args.data_path, transform=train_tf, seed=args.seed)
        val = ds.RgbdFolder(args.data_path, transform=Compose(
            pre + holes + [CenterCrop(cw, ch)]))
    return train, val


class ShardSampler(Sampler):
    """
    Indices rank, rank + world, ... without padding, so every validation frame counts once.

    (DistributedSampler pads the last round with repeated frames, which would bias metrics.)

    :param size: Dataset length.
    :param rank: This process's rank.
    :param world_size: Number of processes.
    """

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def withhold_colour(rgb: torch.Tensor, flat: torch.Tensor, share: float,
                    seed: int) -> torch.Tensor:
    """
    Replace the colour of a random share of the frames by a flat image.

    Drawn from a generator seeded per step and process, so a resumed run withholds the same
    frames as an uninterrupted one.

    :param rgb: Colour [B, 3, H, W] in [0, 1].
    :param flat: Colour [1, 3, 1, 1] in [0, 1] put in place of a withheld frame's.
    :param share: Probability in [0, 1] that a frame's colour is withheld.
    :param seed: Seed of this step's draw.
    :return: Colour [B, 3, H, W]; ``rgb`` itself when no frame is withheld.
    """
    if share <= 0:
        return rgb
    gen = torch.Generator().manual_seed(seed)
    withheld = torch.rand(rgb.shape[0], generator=gen) < share
    if not withheld.any():
        return rgb
    return torch.where(withheld.to(rgb.device).view(-1, 1, 1, 1),
                       flat.to(rgb.dtype).expand_as(rgb), rgb)


def lr_at(step: int, total: int, warmup: int, args: argparse.Namespace) -> float:
    """:return: Learning rate at ``step``: linear warm-up, then cosine to ``min_lr``."""
    if warmup > 0 and step < warmup:
        return args.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def _autocast(info: DistInfo, amp: str) -> Tuple[Any, Optional[torch.amp.GradScaler]]:
    if info.device.type != 'cuda' or amp == 'off':
        return contextlib.nullcontext, None
    if amp == 'auto':
        amp = 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    dtype = torch.bfloat16 if amp == 'bf16' else torch.float16
    scaler = torch.amp.GradScaler('cuda') if dtype == torch.float16 else None
    return (lambda: torch.autocast('cuda', dtype=dtype)), scaler


def _batches(loader: DataLoader, info: DistInfo, desc: str, quiet: bool
             ) -> Iterator[Dict[str, torch.Tensor]]:
    bar = tqdm(loader, desc=desc, disable=quiet or not info.is_main, leave=False,
               dynamic_ncols=True, file=sys.stderr)
    for batch in bar:
        yield {k: v.to(info.device, non_blocking=True) if torch.is_tensor(v) else v
               for k, v in batch.items()}
    bar.close()


@torch.inference_mode()
def evaluate(model: torch.nn.Module, loader: DataLoader, info: DistInfo, autocast: Any,
             quiet: bool = False) -> Dict[str, float]:
    """
    Score the final stage on a loader with the shared metrics (all pixels and holes).

    :return: Metric dict of :class:`DepthMetricAccumulator`, reduced over processes.
    """
    model.eval()
    acc = DepthMetricAccumulator(device=info.device)
    for batch in _batches(loader, info, 'val', quiet):
        with autocast():
            pred = model(batch['rgb'], batch['depth'])[-1]
        acc.update(pred.float().clamp_min(0), batch['gt'], raw=batch['depth'])
    all_reduce_sum(acc.totals, info)
    return acc.compute()


def _state_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.name.replace('.safetensors', '') + '.train_state.pt')


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """
    Train; return the last epoch's log row.

    :param argv: Command-line arguments (None: sys.argv).
    """
    args = parse_args(argv)
    # What reruns this run: the process's own command line, or the arguments it was given.
    command = ' '.join(sys.argv) if argv is None else ' '.join(
        ['python -m training.train', *argv])
    run_start = time.monotonic()
    info = init_distributed(args.device)
    torch.manual_seed(args.seed + info.rank)
    out_dir = Path(args.output_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = build_datasets(args)
    train_sampler = DistributedSampler(train_set, info.world_size, info.rank, shuffle=True,
                                       seed=args.seed) if info.distributed else None
    val_sampler = ShardSampler(len(val_set), info.rank, info.world_size) \
        if info.distributed else None
    gen = torch.Generator().manual_seed(args.seed)
    loader_kw = {'num_workers': args.workers, 'pin_memory': info.device.type == 'cuda',
                 'persistent_workers': False}
    train_loader = DataLoader(train_set, args.batch_size, shuffle=train_sampler is None,
                              sampler=train_sampler, drop_last=len(train_set) >= args.batch_size
                              * info.world_size, generator=gen, **loader_kw)
    val_loader = DataLoader(val_set, args.batch_size, sampler=val_sampler, **loader_kw)

    config = model_config(args)
    model = S2ML(config)
    start_epoch, step, best = 0, 0, math.inf
    state: Optional[Dict[str, Any]] = None
    init_sha256 = None
    if args.init_from:
        loaded, ck_info = load_checkpoint(args.init_from)
        # Parameter-free settings (the initial fill) may differ; the weights must not.
        if _learned_fields(ck_info.config) != _learned_fields(config):
            raise SystemExit(f'{args.init_from} holds variant {ck_info.variant} '
                             f'({ck_info.config}), whose weights do not fit {config}')
        model.load_state_dict(loaded.state_dict())
        init_sha256 = ck_info.sha256
    resume = out_dir / 'last.safetensors' if args.resume == 'auto' else args.resume
    if resume is not None and (args.resume != 'auto' or Path(resume).is_file()):
        loaded, ck_info = load_checkpoint(resume)
        if ck_info.config != config:
            raise SystemExit(f'{resume} holds variant {ck_info.variant}, not {args.variant}')
        model.load_state_dict(loaded.state_dict())
        sp = _state_path(Path(resume))
        if not sp.is_file():
            raise SystemExit(f'cannot resume: training state {sp} does not exist')
        state = torch.load(sp, map_location='cpu', weights_only=True)
        start_epoch, step, best = state['next_epoch'], state['step'], state['best']
    model.to(info.device)
    ddp_model = DistributedDataParallel(
        model, device_ids=[info.local_rank] if info.device.type == 'cuda' else None) \
        if info.distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999),
                                  weight_decay=args.weight_decay)
    autocast, scaler = _autocast(info, args.amp)
    if state is not None:
        optimizer.load_state_dict(state['optimizer'])
        if scaler is not None and state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
    criterion = loss_function(args)
    # The loss needs D_0 from the model only for the penalty on the cascade's change to it.
    with_initial = args.change_weight > 0
    steps_per_epoch = max(1, len(train_loader))
    total = args.epochs * steps_per_epoch
    if args.max_steps:
        total = min(total, args.max_steps)
    warmup = int(args.warmup_epochs * steps_per_epoch)
    log_path = out_dir / 'metrics.csv'
    row: Dict[str, Any] = {}
    if info.is_main:
        print(f'S2ML {args.variant}: {sum(p.numel() for p in model.parameters()) / 1e6:.3f} M '
              f'params, {len(train_set)} train / {len(val_set)} val frames, '
              f'{info.world_size} process(es) on {info.device}, epochs {start_epoch}..'
              f'{args.epochs - 1}, step {step}', flush=True)

    for epoch in range(start_epoch, args.epochs):
        if args.max_steps and step >= args.max_steps:
            break
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        ddp_model.train()
        t0, seen = time.perf_counter(), 0
        sums = torch.zeros(3, dtype=torch.float64, device=info.device)  # loss, l1, batches
        stopped_early = False
        for batch in _batches(train_loader, info, f'epoch {epoch}', args.no_progress):
            lr = lr_at(step, total, warmup, args)
            for group in optimizer.param_groups:
                group['lr'] = lr
            seen_rgb = withhold_colour(
                batch['rgb'], model.rgb_mean, args.colour_dropout,
                seed=(args.seed * 1_000_003 + step) * info.world_size + info.rank)
            # The initial fill gets the true colour only where the network's was withheld.
            guide_rgb = None if seen_rgb is batch['rgb'] else batch['rgb']
            with autocast():
                preds = ddp_model(seen_rgb, batch['depth'], guide_rgb=guide_rgb,
                                  with_initial=with_initial)
            initial = None
            if with_initial:
                initial, *preds = preds
            loss, parts = criterion([p.float() for p in preds], batch['gt'],
                                    raw_depth=batch['depth'], planted=batch.get('planted'),
                                    initial=initial)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            seen += batch['rgb'].shape[0]
            sums += torch.stack([loss.detach().double(), parts['l1_final'].double(),
                                 torch.ones((), dtype=torch.float64, device=info.device)])
            if args.max_steps and step >= args.max_steps:
                stopped_early = True
                break
        elapsed = time.perf_counter() - t0
        seen_t = torch.tensor([float(seen)], dtype=torch.float64, device=info.device)
        all_reduce_sum(sums, info)
        all_reduce_sum(seen_t, info)
        row = {'epoch': epoch, 'step': step, 'lr': lr_at(max(step - 1, 0), total, warmup, args),
               'train_loss': float(sums[0] / sums[2].clamp_min(1)),
               'train_l1_final': float(sums[1] / sums[2].clamp_min(1)),
               'samples_per_s': float(seen_t.item() / max(elapsed, 1e-9)),
               'epoch_time_s': elapsed}
        last_epoch = epoch == args.epochs - 1 or stopped_early
        if (epoch + 1) % args.eval_every == 0 or last_epoch:
            metrics = evaluate(ddp_model, val_loader, info, autocast, args.no_progress)
            row.update({f'val_{k}': v for k, v in metrics.items()
                        if not k.endswith(('images', 'pixels'))})
        # An epoch cut short by --max-steps is redone from its start on resume.
        next_epoch = epoch if stopped_early and epoch < args.epochs - 1 else epoch + 1
        if info.is_main:
            _write_row(log_path, row)
            provenance = {'dataset': args.data, 'data_path': args.data_path,
                          'sensors': args.sensors, 'epoch': epoch, 'step': step,
                          'seed': args.seed, 'world_size': info.world_size,
                          'init_from_sha256': init_sha256,
                          'command': command,
                          'elapsed_s_this_process': round(time.monotonic() - run_start),
                          'torch': torch.__version__,
                          'args': {k: v for k, v in vars(args).items()
                                   if isinstance(v, (int, float, str, bool, list, type(None)))},
                          'val': {k: v for k, v in row.items() if k.startswith('val_')}}
            save_checkpoint(out_dir / 'last.safetensors', model, provenance)
            torch.save({'optimizer': optimizer.state_dict(),
                        'scaler': scaler.state_dict() if scaler is not None else {},
                        'next_epoch': next_epoch, 'step': step, 'best': best,
                        'args': {k: v for k, v in vars(args).items()
                                 if isinstance(v, (int, float, str, bool, list, type(None)))}},
                       _state_path(out_dir / 'last.safetensors'))
            # Holes are the task: pick the best checkpoint by the error on them.
            score = row.get('val_hole_rmse', row.get('val_rmse', math.nan))
            if math.isfinite(score) and score < best:
                best = score
                save_checkpoint(out_dir / 'best.safetensors', model, provenance)
            summary = ', '.join(f'{k} {v:.4g}' for k, v in row.items()
                                if k in ('train_loss', 'samples_per_s', 'val_rmse', 'val_psnr',
                                         'val_hole_rmse'))
            print(f'epoch {epoch} step {step}: {summary}', flush=True)
        barrier(info)
    cleanup(info)
    return row


def _write_row(path: Path, row: Dict[str, Any]) -> None:
    """Append a row to the CSV log, rewriting the header if new columns appear."""
    rows: List[Dict[str, Any]] = []
    if path.is_file():
        with open(path, newline='') as f:
            rows = list(csv.DictReader(f))
    rows.append({k: str(v) for k, v in row.items()})
    fields: List[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    tmp = path.with_name(path.name + '.partial')
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


if __name__ == '__main__':
    main()
