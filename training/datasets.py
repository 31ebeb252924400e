"""
Datasets of (colour, raw depth, ground-truth depth, intrinsics) for training and evaluation.

- :class:`NyuDepthV2Labeled`: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5) with ``images``,
  ``rawDepths`` and ``depths``; the official 795 / 654 split from ``splits.mat``
  (``trainNdxs`` / ``testNdxs``, 1-based).
- :class:`SunRgbd`: SUN RGB-D frame folders (``image/``, ``depth/``, ``depth_bfx/``,
  ``intrinsics.txt``); raw = ``depth``, ground truth = ``depth_bfx``.
- :class:`RgbdFolder`: a folder of colour / depth PNG pairs with an intrinsics file (also the
  layout of the shared real-frame folders: ``<name>_color.png`` + ``<name>_depth_raw.png``).
- :class:`SimulatedRgbd`: frames from :mod:`s2ml_ros.simulation`, deterministic per index;
  the fixed test set uses camera seeds from a range the training set never touches.
- :class:`RosbagFrames`: colour / depth / CameraInfo (and optional ground-truth depth) from a
  rosbag2 bag, paired by header stamp and decoded exactly as the live node does.

Every item is a sample dict (see :mod:`training.transforms`) passed through the transform and
:func:`training.transforms.to_tensor`. Missing paths, wrong formats and inconsistent frames
raise :class:`DatasetError` naming the file and the problem; with ``on_bad_frame='skip'`` a bad
frame is skipped with a warning (the next frame is returned) and counted in ``bad_frames``.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.simulation import check_share, SensorModel, SimulatedRgbdCamera
from torch.utils.data import Dataset

from .transforms import Sample, to_tensor

_logger = logging.getLogger(__name__)
PathLike = Union[str, Path]
Transform = Callable[[Sample, np.random.Generator], Sample]

# NYU-Depth V2 colour camera (toolbox camera_params.m). The toolbox back-projects with 1-based
# pixel coordinates, so 1 is subtracted from cx, cy for this package's 0-based convention.
NYU_INTRINSICS = Intrinsics(5.1885790117450188e+02, 5.1946961112127485e+02,
                            3.2558244941119034e+02 - 1, 2.5373616633400465e+02 - 1, 640, 480)
NYU_TRAIN_SIZE, NYU_TEST_SIZE = 795, 654
# Simulated data: training seeds count up from 0; the fixed test set starts far above.
SIM_TEST_SEED_BASE = 1_000_000_000


class DatasetError(ValueError):
    """A dataset path, file or frame that cannot be used; the message names it."""


class _FrameDataset(Dataset):
    """Shared item logic: load, validate, transform, skip bad frames."""

    def __init__(self, transform: Optional[Transform], seed: int, on_bad_frame: str) -> None:
        if on_bad_frame not in ('skip', 'raise'):
            raise ValueError(f"on_bad_frame must be 'skip' or 'raise', got {on_bad_frame!r}")
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.on_bad_frame = on_bad_frame
        self.bad_frames = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for ``epoch`` (call before each epoch, as the sampler)."""
        self.epoch = int(epoch)

    def load(self, index: int) -> Sample:
        """:return: Frame ``index`` as a sample dict; raises DatasetError for a bad frame."""
        raise NotImplementedError

    def sample(self, index: int) -> Sample:
        """:return: Frame ``index`` as a numpy sample, transformed, bad frames skipped."""
        n = len(self)
        for attempt in range(min(n, 20)):
            i = (index + attempt) % n
            try:
                sample = self.load(i)
                _validate(sample, self.describe(i))
            except DatasetError as exc:
                if self.on_bad_frame == 'raise':
                    raise
                self.bad_frames += 1
                _logger.warning('skipping bad frame (%d so far): %s', self.bad_frames, exc)
                continue
            if self.transform is not None:
                rng = np.random.default_rng([self.seed, self.epoch, i])
                sample = self.transform(sample, rng)
            return sample
        raise DatasetError(f'{self.describe(index)}: 20 bad frames in a row, giving up')

    def describe(self, index: int) -> str:
        """:return: Human-readable name of frame ``index`` (file and position)."""
        return f'frame {index}'

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return to_tensor(self.sample(index))


def _validate(sample: Sample, where: str) -> None:
    rgb, depth, gt = sample['rgb'], sample['depth'], sample['gt']
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise DatasetError(f'{where}: colour must be uint8 [H, W, 3], got {rgb.dtype} '
                           f'{rgb.shape}')
    if depth.shape != rgb.shape[:2] or gt.shape != rgb.shape[:2]:
        raise DatasetError(f'{where}: colour {rgb.shape[:2]}, raw depth {depth.shape} and '
                           f'ground truth {gt.shape} sizes differ')
    k = sample['intrinsics']
    if (k.height, k.width) != rgb.shape[:2]:
        raise DatasetError(f'{where}: intrinsics are for {k.width}x{k.height}, image is '
                           f'{rgb.shape[1]}x{rgb.shape[0]}')
    if not np.any(gt > 0):
        raise DatasetError(f'{where}: ground truth has no valid pixel')


def _require(path: PathLike, what: str, is_dir: bool = False) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f'{what} {path} does not exist')
    if is_dir and not path.is_dir():
        raise DatasetError(f'{what} {path} is not a directory')
    if not is_dir and not path.is_file():
        raise DatasetError(f'{what} {path} is not a file')
    return path


# --------------------------------------------------------------------------- NYU-Depth V2


def read_nyu_splits(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """
    Read the official split file (``splits.mat``, MATLAB v5 or v7.3).

    :param path: The file, holding ``trainNdxs`` and ``testNdxs`` (1-based frame numbers).
    :return: (train, test) 0-based indices, int64.
    """
    path = _require(path, 'NYU split file')
    arrays: Dict[str, np.ndarray] = {}
    try:
        import scipy.io
        mat = scipy.io.loadmat(str(path))
        arrays = {k: np.asarray(mat[k]) for k in ('trainNdxs', 'testNdxs') if k in mat}
    except (ValueError, NotImplementedError, OSError):
        try:
            import h5py
            with h5py.File(path, 'r') as f:
                arrays = {k: np.asarray(f[k]) for k in ('trainNdxs', 'testNdxs') if k in f}
        except OSError as exc:
            raise DatasetError(f'NYU split file {path} is neither a MATLAB v5 nor a v7.3 '
                               f'(HDF5) file: {exc}') from exc
    missing = {'trainNdxs', 'testNdxs'} - set(arrays)
    if missing:
        raise DatasetError(f'NYU split file {path} lacks {sorted(missing)}')
    train = arrays['trainNdxs'].astype(np.int64).ravel() - 1
    test = arrays['testNdxs'].astype(np.int64).ravel() - 1
    return train, test


class NyuDepthV2Labeled(_FrameDataset):
    """
    NYU-Depth V2 labelled set: raw Kinect depth -> colorization-filled depth.

    The .mat is MATLAB v7.3 (HDF5), stored column-major: ``images`` is [N, 3, W, H] uint8 and
    ``rawDepths`` / ``depths`` are [N, W, H] float meters; frames are transposed to [H, W].

    :param mat_path: ``nyu_depth_v2_labeled.mat``.
    :param split: 'train', 'test' or 'all'.
    :param splits_path: ``splits.mat``; None looks for it next to the .mat. Without it, a
        seeded random 795 / 654-proportioned split is used, with a warning: numbers on it are
        not comparable with published ones.
    :param transform: Augmentation ``(sample, rng) -> sample``.
    :param seed: Seed of the augmentation.
    :param on_bad_frame: 'skip' (warn, count, use the next frame) or 'raise'.
    """

    def __init__(self, mat_path: PathLike, split: str = 'train',
                 splits_path: Optional[PathLike] = None, transform: Optional[Transform] = None,
                 seed: int = 0, on_bad_frame: str = 'skip') -> None:
        super().__init__(transform, seed, on_bad_frame)
        import h5py
        self.path = _require(mat_path, 'NYU-Depth V2 file')
        try:
            with h5py.File(self.path, 'r') as f:
                missing = [k for k in ('images', 'rawDepths', 'depths') if k not in f]
                if missing:
                    raise DatasetError(f'NYU-Depth V2 file {self.path} lacks datasets {missing}')
                shapes = {k: f[k].shape for k in ('images', 'rawDepths', 'depths')}
        except OSError as exc:
            raise DatasetError(f'NYU-Depth V2 file {self.path} is not a MATLAB v7.3 (HDF5) '
                               f'file: {exc}') from exc
        n = shapes['images'][0]
        if len(shapes['images']) != 4 or shapes['images'][1] != 3:
            raise DatasetError(f'NYU-Depth V2 file {self.path}: images has shape '
                               f'{shapes["images"]}, expected [N, 3, W, H]')
        for k in ('rawDepths', 'depths'):
            if shapes[k] != (n,) + tuple(shapes['images'][2:]):
                raise DatasetError(f'NYU-Depth V2 file {self.path}: {k} has shape {shapes[k]}, '
                                   f'images {shapes["images"]}')
        self.num_total = n
        if split == 'all':
            self.indices = np.arange(n)
        elif split in ('train', 'test'):
            if splits_path is None and (self.path.parent / 'splits.mat').is_file():
                splits_path = self.path.parent / 'splits.mat'
            if splits_path is not None:
                train, test = read_nyu_splits(splits_path)
            else:
                _logger.warning('no splits.mat for %s: using a seeded random split with the '
                                'official 795/654 proportions (not the official split)',
                                self.path)
                perm = np.random.default_rng(1449).permutation(n)
                n_train = int(round(n * NYU_TRAIN_SIZE / (NYU_TRAIN_SIZE + NYU_TEST_SIZE)))
                train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
            self.indices = train if split == 'train' else test
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
                raise DatasetError(f'split indices out of range 1..{n} for {self.path}')
        else:
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        width, height = shapes['images'][2], shapes['images'][3]
        self.intrinsics = NYU_INTRINSICS if (width, height) == (640, 480) else \
            NYU_INTRINSICS.resized(width, height)
        self._file = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def describe(self, index: int) -> str:
        """:return: File and frame number (1-based, as MATLAB)."""
        return f'{self.path} frame {int(self.indices[index]) + 1}'

    def load(self, index: int) -> Sample:
        """:return: One labelled frame as a sample dict."""
        if self._file is None:  # opened lazily: one handle per DataLoader worker
            import h5py
            self._file = h5py.File(self.path, 'r')
        i = int(self.indices[index])
        rgb = np.ascontiguousarray(np.asarray(self._file['images'][i]).transpose(2, 1, 0))
        raw = np.asarray(self._file['rawDepths'][i], dtype=np.float32).T
        gt = np.asarray(self._file['depths'][i], dtype=np.float32).T
        return {'rgb': rgb.astype(np.uint8), 'depth': np.ascontiguousarray(raw),
                'gt': np.ascontiguousarray(gt), 'intrinsics': self.intrinsics,
                'name': f'nyu_{i + 1:04d}'}


# --------------------------------------------------------------------------- PNG helpers


def read_depth_png(path: PathLike, depth_scale: float = 1000.0, sun_rotation: bool = False
                   ) -> np.ndarray:
    """
    Read a 16-bit depth PNG as meters.

    :param path: The file.
    :param depth_scale: Stored units per meter (1000 = millimetres).
    :param sun_rotation: Undo SUN RGB-D's bit rotation ``(v >> 3) | (v << 13)`` first.
    :return: float32 [H, W] meters, 0 = missing.
    """
    path = _require(path, 'depth image')
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f'depth image {path} cannot be decoded')
    if img.dtype != np.uint16 or img.ndim != 2:
        raise DatasetError(f'depth image {path} must be single-channel 16-bit, got '
                           f'{img.dtype} with shape {img.shape}')
    if sun_rotation:
        img = (img >> np.uint16(3)) | (img << np.uint16(13))
    return img.astype(np.float32) / np.float32(depth_scale)


def read_color(path: PathLike) -> np.ndarray:
    """:return: The colour image as RGB uint8 [H, W, 3]."""
    path = _require(path, 'colour image')
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f'colour image {path} cannot be decoded')
    return np.ascontiguousarray(img[..., ::-1])


def _read_k_txt(path: Path) -> np.ndarray:
    try:
        k = np.loadtxt(path, dtype=np.float64).reshape(-1)
    except ValueError as exc:
        raise DatasetError(f'intrinsics file {path} is not a 3x3 matrix of numbers: {exc}') \
            from exc
    if k.size != 9:
        raise DatasetError(f'intrinsics file {path} holds {k.size} numbers, expected 9 (3x3)')
    return k.reshape(3, 3)


# --------------------------------------------------------------------------- SUN RGB-D


class SunRgbd(_FrameDataset):
    """
    SUN RGB-D frame folders: raw ``depth/`` -> refined ``depth_bfx/``.

    :param root: A SUN RGB-D tree (or any folder below it); every folder holding
        ``intrinsics.txt``, ``image/``, ``depth/`` and ``depth_bfx/`` is a frame.
    :param frames: Optional list of frame folders relative to ``root`` (a split); a text file
        path with one folder per line is accepted too.
    :param transform: Augmentation ``(sample, rng) -> sample``.
    :param seed: Seed of the augmentation.
    :param on_bad_frame: 'skip' or 'raise'.
    """

    def __init__(self, root: PathLike, frames: Optional[Union[Sequence[str], PathLike]] = None,
                 transform: Optional[Transform] = None, seed: int = 0,
                 on_bad_frame: str = 'skip') -> None:
        super().__init__(transform, seed, on_bad_frame)
        self.root = _require(root, 'SUN RGB-D root', is_dir=True)
        if frames is None:
            dirs = sorted(p.parent for p in self.root.rglob('intrinsics.txt')
                          if (p.parent / 'image').is_dir() and (p.parent / 'depth').is_dir())
        else:
            if isinstance(frames, (str, Path)):
                listing = _require(frames, 'SUN RGB-D frame list')
                frames = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
            dirs = [self.root / f for f in frames]
            absent = [str(d) for d in dirs if not d.is_dir()]
            if absent:
                raise DatasetError(f'{len(absent)} listed SUN RGB-D frame folders do not exist, '
                                   f'e.g. {absent[0]}')
        if not dirs:
            raise DatasetError(f'no SUN RGB-D frame folders (intrinsics.txt + image/ + depth/) '
                               f'under {self.root}')
        self.frames: List[Path] = dirs

    def __len__(self) -> int:
        return len(self.frames)

    def describe(self, index: int) -> str:
        """:return: The frame folder."""
        return str(self.frames[index])

    @staticmethod
    def _single(folder: Path, pattern: str) -> Path:
        files = sorted(folder.glob(pattern))
        if not files:
            raise DatasetError(f'{folder} holds no {pattern} file')
        return files[0]

    def load(self, index: int) -> Sample:
        """:return: One frame as a sample dict."""
        d = self.frames[index]
        rgb = read_color(self._single(d / 'image', '*.jpg') if any((d / 'image').glob('*.jpg'))
                         else self._single(d / 'image', '*.png'))
        raw = read_depth_png(self._single(d / 'depth', '*.png'), 1000.0, sun_rotation=True)
        gt_dir = d / 'depth_bfx'
        if not gt_dir.is_dir():
            raise DatasetError(f'{d} has no depth_bfx/ folder (ground truth)')
        gt = read_depth_png(self._single(gt_dir, '*.png'), 1000.0, sun_rotation=True)
        k = _read_k_txt(d / 'intrinsics.txt')
        h, w = rgb.shape[:2]
        return {'rgb': rgb, 'depth': raw, 'gt': gt,
                'intrinsics': Intrinsics.from_matrix(k, w, h), 'name': d.name}


# --------------------------------------------------------------------------- generic folders


class RgbdFolder(_FrameDataset):
    """
    A folder of registered colour / 16-bit depth PNG pairs and an intrinsics file.

    Two layouts are recognised: ``color/<name>.png|jpg`` + ``depth/<name>.png`` (+ optional
    ``depth_gt/<name>.png``), or flat ``<name>_color.png|jpg`` + ``<name>_depth_raw.png``
    (+ optional ``<name>_depth_gt.png``). Intrinsics come from ``intrinsics.json`` (keys fx, fy,
    cx, cy, width, height, depth_scale; or {"frames": {name: {...}}} per frame) or
    ``intrinsics.txt`` (3x3 matrix; then ``depth_scale`` is the argument). Without ground truth
    the raw depth is also the target ('gt' = raw), which suits evaluation with hidden pixels.

    :param root: The folder.
    :param depth_scale: Stored depth units per meter when the intrinsics file does not say.
    :param transform: Augmentation ``(sample, rng) -> sample``.
    :param seed: Seed of the augmentation.
    :param on_bad_frame: 'skip' or 'raise'.
    """

    def __init__(self, root: PathLike, depth_scale: float = 1000.0,
                 transform: Optional[Transform] = None, seed: int = 0,
                 on_bad_frame: str = 'skip') -> None:
        super().__init__(transform, seed, on_bad_frame)
        self.root = _require(root, 'RGB-D folder', is_dir=True)
        self.depth_scale = float(depth_scale)
        self.pairs: List[Tuple[str, Path, Path, Optional[Path]]] = []
        if (self.root / 'color').is_dir() and (self.root / 'depth').is_dir():
            for c in sorted((self.root / 'color').iterdir()):
                if c.suffix.lower() not in ('.png', '.jpg', '.jpeg'):
                    continue
                d = self.root / 'depth' / (c.stem + '.png')
                g = self.root / 'depth_gt' / (c.stem + '.png')
                if d.is_file():
                    self.pairs.append((c.stem, c, d, g if g.is_file() else None))
        else:
            for d in sorted(self.root.glob('*_depth_raw.png')):
                name = d.name[:-len('_depth_raw.png')]
                colors = [self.root / f'{name}_color{ext}' for ext in ('.png', '.jpg')]
                color = next((c for c in colors if c.is_file()), None)
                g = self.root / f'{name}_depth_gt.png'
                if color is not None:
                    self.pairs.append((name, color, d, g if g.is_file() else None))
        if not self.pairs:
            raise DatasetError(f'no colour/depth pairs in {self.root} (expected color/ + depth/ '
                               'or <name>_color.png + <name>_depth_raw.png)')
        self._intrinsics = self._read_intrinsics()

    def _read_intrinsics(self) -> Dict[str, Any]:
        js, txt = self.root / 'intrinsics.json', self.root / 'intrinsics.txt'
        if js.is_file():
            try:
                data = json.loads(js.read_text())
            except json.JSONDecodeError as exc:
                raise DatasetError(f'intrinsics file {js} is not valid JSON: {exc}') from exc
            return {'json': data, 'path': js}
        if txt.is_file():
            return {'matrix': _read_k_txt(txt), 'path': txt}
        raise DatasetError(f'{self.root} has neither intrinsics.json nor intrinsics.txt')

    def _frame_intrinsics(self, name: str, width: int, height: int) -> Tuple[Intrinsics, float]:
        info = self._intrinsics
        if 'matrix' in info:
            return Intrinsics.from_matrix(info['matrix'], width, height), self.depth_scale
        data = info['json']
        entry = data.get('frames', {}).get(name, data) if 'frames' in data else data
        try:
            k = Intrinsics(float(entry['fx']), float(entry['fy']), float(entry['cx']),
                           float(entry['cy']), int(entry.get('width', width)),
                           int(entry.get('height', height)))
        except KeyError as exc:
            raise DatasetError(f'intrinsics file {info["path"]} lacks {exc} for frame '
                               f'{name!r}') from exc
        if (k.width, k.height) != (width, height):
            k = k.resized(width, height)
        return k, float(entry.get('depth_scale', self.depth_scale))

    def __len__(self) -> int:
        return len(self.pairs)

    def describe(self, index: int) -> str:
        """:return: The depth file of frame ``index``."""
        return str(self.pairs[index][2])

    def load(self, index: int) -> Sample:
        """:return: One pair as a sample dict."""
        name, c, d, g = self.pairs[index]
        rgb = read_color(c)
        h, w = rgb.shape[:2]
        k, scale = self._frame_intrinsics(name, w, h)
        raw = read_depth_png(d, scale)
        if raw.shape != (h, w):
            raise DatasetError(f'{d}: depth is {raw.shape[1]}x{raw.shape[0]} but colour {c} is '
                               f'{w}x{h}')
        gt = read_depth_png(g, scale) if g is not None else raw.copy()
        return {'rgb': rgb, 'depth': raw, 'gt': gt, 'intrinsics': k, 'name': name}


# --------------------------------------------------------------------------- rosbag2


class RosbagFrames(_FrameDataset):
    """
    Frames of a rosbag2 bag (MCAP or sqlite3), e.g. recorded on the robot with the user's sensor.

    Topics are detected as the bag evaluator detects them (or given), colour and depth are paired
    by header stamp with the node's synchronizer and decoded with the node's own preprocessing
    (:func:`s2ml_ros.completion.prepare_frame`), so training sees what the node will see. Frames
    are decoded once into memory: use ``every`` and ``max_frames`` for long bags. Without a
    ground-truth topic the raw depth is also the target ('gt' = raw); combine with
    :class:`training.transforms.SensorHoles` to train on new holes over measured pixels.

    :param bag: Bag folder, or a single .mcap / .db3 file.
    :param color_topic: Colour topic (None = detect).
    :param depth_topic: Raw depth topic (None = detect).
    :param info_topic: CameraInfo topic (None = detect).
    :param gt_topic: Ground-truth depth topic (None = detect, '' = none).
    :param every: Keep every n-th synchronized frame.
    :param max_frames: Keep at most this many frames (0 = all).
    :param depth_scale: Meters per unit of 16UC1 depth.
    :param transform: Augmentation ``(sample, rng) -> sample``.
    :param seed: Seed of the augmentation.
    :param on_bad_frame: 'skip' or 'raise'.
    """

    def __init__(self, bag: PathLike, color_topic: Optional[str] = None,
                 depth_topic: Optional[str] = None, info_topic: Optional[str] = None,
                 gt_topic: Optional[str] = None, every: int = 1, max_frames: int = 0,
                 depth_scale: float = 0.001, transform: Optional[Transform] = None,
                 seed: int = 0, on_bad_frame: str = 'skip') -> None:
        # Imported here: reading bags needs rosbags, which the other datasets do not.
        from s2ml_ros.bag_io import BagEvalError, BagReader, detect_topics, iter_framesets, \
            PairingStats
        from s2ml_ros.completion import prepare_frame
        from s2ml_ros.conversions import ConversionError, depth_to_meters
        from s2ml_ros.params import NodeParams

        super().__init__(transform, seed, on_bad_frame)
        if every < 1 or max_frames < 0:
            raise ValueError(f'every must be >= 1 and max_frames >= 0, got {every}, {max_frames}')
        self.path = _require(bag, 'bag', is_dir=Path(bag).is_dir())
        params = NodeParams(depth_scale=depth_scale)
        self.frames: List[Sample] = []
        self.skipped: Dict[str, int] = {}
        try:
            with BagReader(str(self.path)) as reader:
                self.topics = detect_topics(reader, color_topic, depth_topic, info_topic,
                                            gt_topic)
                self.pairing = PairingStats()
                for frameset in iter_framesets(reader, self.topics, params, self.pairing):
                    if frameset.index % every:
                        continue
                    try:
                        prepared = prepare_frame(frameset.color, frameset.depth, frameset.info,
                                                 params)
                        if prepared.intrinsics is None:
                            raise ConversionError(prepared.intrinsics_error)
                        gt = prepared.depth_m
                        if frameset.ground_truth is not None:
                            gt = depth_to_meters(frameset.ground_truth, depth_scale)
                    except ConversionError as exc:
                        reason = str(exc).split(':')[0]
                        self.skipped[reason] = self.skipped.get(reason, 0) + 1
                        if on_bad_frame == 'raise':
                            raise DatasetError(
                                f'{self.path}: frame {frameset.index}: {exc}') from exc
                        continue
                    self.frames.append({'rgb': prepared.rgb, 'depth': prepared.depth_m,
                                        'gt': gt, 'intrinsics': prepared.intrinsics,
                                        'name': f'{self.path.name}#{frameset.index}'})
                    if max_frames and len(self.frames) >= max_frames:
                        break
        except BagEvalError as exc:
            raise DatasetError(str(exc)) from exc
        if self.skipped:
            _logger.warning('%s: skipped %d undecodable frames: %s', self.path,
                            sum(self.skipped.values()), self.skipped)
        if not self.frames:
            raise DatasetError(f'{self.path}: no usable colour/depth/CameraInfo frame '
                               f'(pairing: {self.pairing.as_dict()})')

    def __len__(self) -> int:
        return len(self.frames)

    def describe(self, index: int) -> str:
        """:return: Bag and synchronized-frame number of item ``index``."""
        return self.frames[index]['name']

    def load(self, index: int) -> Sample:
        """:return: A copy of one decoded frame (transforms may modify it)."""
        frame = self.frames[index]
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in frame.items()}


# --------------------------------------------------------------------------- simulation


class SimulatedRgbd(_FrameDataset):
    """
    Frames from the procedural simulator; item i is the same frame on every machine.

    Item i renders frame ``(i * 37) % 600`` of a camera with seed ``seed_base + i``, so items
    differ in room, viewpoint and noise. The fixed test set (``split='test'``) uses seeds from
    ``SIM_TEST_SEED_BASE`` up, a range training never reaches.

    :param num_samples: Number of items.
    :param width: Frame width, pixels.
    :param height: Frame height, pixels.
    :param sensors: Sensor presets, cycled over the items.
    :param split: 'train' or 'test' (selects the seed range).
    :param seed_offset: Added to the seed range start (e.g. for a validation range).
    :param transform: Augmentation ``(sample, rng) -> sample``.
    :param seed: Seed of the augmentation.
    :param cache_dir: If set, rendered frames are stored there (compressed .npz) and read back
        in later epochs instead of being rendered again. Delete it after changing the
        simulator.
    :param sensor_variation: Strength of the per-item variation of the sensor's hole and noise
        parameters around the preset (:meth:`SensorModel.varied`); 0 = the presets exactly.
    :param camouflage: Share of the matte and textured objects drawn with the look of a surface
        they stand against (:meth:`Scene.camouflaged`), so that some depth edges have no
        colour edge; 0 = the rooms as drawn.
    :param level_views: Share of the items whose camera is held about level instead of looking
        down (:class:`SimulatedRgbdCamera`); 0 = always looking down.
    :param clutter: Share of the items whose room is crowded with the clutter of a lived-in
        room (:meth:`Scene.cluttered`); 0 = the rooms as drawn.
    """

    def __init__(self, num_samples: int, width: int = 320, height: int = 240,
                 sensors: Sequence[str] = ('structured_light',), split: str = 'train',
                 seed_offset: int = 0, transform: Optional[Transform] = None,
                 seed: int = 0, cache_dir: Optional[PathLike] = None,
                 sensor_variation: float = 0.0, camouflage: float = 0.0,
                 level_views: float = 0.0, clutter: float = 0.0) -> None:
        super().__init__(transform, seed, 'raise')
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not sensor_variation >= 0:
            raise ValueError(f'sensor_variation must be >= 0, got {sensor_variation}')
        self.sensor_variation = float(sensor_variation)
        # Checked here as well as in the camera, which is only built when a frame is read.
        self.camouflage = check_share('camouflage', camouflage)
        self.level_views = check_share('level_views', level_views)
        self.clutter = check_share('clutter', clutter)
        self.num_samples = int(num_samples)
        self.width, self.height = int(width), int(height)
        self.sensors = list(sensors)
        self.seed_base = (SIM_TEST_SEED_BASE if split == 'test' else 0) + int(seed_offset)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return self.num_samples

    def describe(self, index: int) -> str:
        """:return: Seed and frame of item ``index``."""
        return f'simulated seed {self.seed_base + index} frame {(index * 37) % 600}'

    def load(self, index: int) -> Sample:
        """:return: One simulated frame as a sample dict."""
        sensor = self.sensors[index % len(self.sensors)]
        seed, frame = self.seed_base + index, (index * 37) % 600
        name = f'sim_{seed}'
        variation = f'_v{self.sensor_variation:g}' if self.sensor_variation else ''
        if self.camouflage:
            variation += f'_c{self.camouflage:g}'
        if self.level_views:
            variation += f'_l{self.level_views:g}'
        if self.clutter:
            variation += f'_k{self.clutter:g}'
        cached = None
        if self.cache_dir is not None:
            cached = self.cache_dir / (
                f'{sensor}{variation}_{self.width}x{self.height}_{seed}_{frame}.npz')
            if cached.is_file():
                try:
                    with np.load(cached) as z:
                        k = z['intrinsics']
                        intr = Intrinsics(float(k[0]), float(k[1]), float(k[2]), float(k[3]),
                                          self.width, self.height)
                        return {'rgb': z['rgb'], 'depth': z['depth'], 'gt': z['gt'],
                                'intrinsics': intr, 'name': name}
                except (OSError, ValueError, KeyError) as exc:
                    _logger.warning('re-rendering unreadable cache file %s: %s', cached, exc)
        model = SensorModel.from_preset(sensor).varied(
            np.random.default_rng([seed, frame, 11]), self.sensor_variation)
        cam = SimulatedRgbdCamera(self.width, self.height, model, seed=seed,
                                  camouflage=self.camouflage, level_views=self.level_views,
                                  clutter=self.clutter)
        f = cam.frame_at(frame)
        if cached is not None:
            tmp = cached.with_name(cached.name + f'.{os.getpid()}.partial.npz')
            k = f.intrinsics
            np.savez_compressed(tmp, rgb=f.rgb, depth=f.depth_raw_m, gt=f.depth_gt_m,
                                intrinsics=np.array([k.fx, k.fy, k.cx, k.cy]))
            os.replace(tmp, cached)
        return {'rgb': f.rgb, 'depth': f.depth_raw_m, 'gt': f.depth_gt_m,
                'intrinsics': f.intrinsics, 'name': name}
