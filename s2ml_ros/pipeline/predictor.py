"""
Numpy-in, numpy-out depth completion: the one entry point the node, evaluation and benchmarks use.

The predictor owns device choice, precision, inference mode, input validation and the
"keep measured pixels" option; the network itself stays a plain :class:`torch.nn.Module`.
"""

from contextlib import nullcontext
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from ..model import CheckpointError, CheckpointInfo, DEFAULT_CHECKPOINT, load_checkpoint, S2ML
from ..model.hole_regions import hole_region_share
from ..model.layers import initial_fill
from ..registration import ColourOffset, estimate_colour_offset

_logger = logging.getLogger(__name__)

PRECISIONS = ('fp32', 'fp16', 'bf16')
_AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


class PredictorInputError(ValueError):
    """An image handed to :meth:`DepthCompletionPredictor.predict` has the wrong type or shape."""


class DefaultWeightsMissingError(CheckpointError):
    """No checkpoint was given and the package ships no default weights."""


def resolve_device(device: Union[str, torch.device] = 'auto') -> torch.device:
    """
    Turn a device request into a torch device.

    :param device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.
    :raises ValueError: For CUDA requested on a machine without it, or an unknown name.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f'unknown device {device!r}; accepted: auto, cpu, cuda, cuda:N') \
            from exc
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available here; '
                         f'use device auto or cpu')
    if resolved.type not in ('cpu', 'cuda'):
        raise ValueError(f'unsupported device {device!r}; accepted: auto, cpu, cuda, cuda:N')
    return resolved


@torch.inference_mode()
def initial_fill_image(rgb: np.ndarray, depth_m: np.ndarray, kind: str, fill_iterations: int,
                       fill_solver: str, fill_guide: str,
                       device: Union[str, torch.device] = 'cpu') -> np.ndarray:
    """
    Run one of the network's parameter-free initial fills on numpy images.

    :param rgb: Colour image uint8 [H, W, 3] (read only by 'guided_multigrid').
    :param depth_m: Raw depth [H, W] in meters; 0 or NaN = missing.
    :param kind: One of :data:`s2ml_ros.model.config.INITIAL_FILLS`.
    :param fill_iterations: Full-resolution sweeps of 'guided_multigrid'.
    :param fill_solver: 'sor' or 'jacobi'.
    :param fill_guide: 'chroma', 'rgb' or 'gray'.
    :param device: Where to run.
    :return: The filled depth, float32 [H, W] in meters.
    """
    valid = np.isfinite(depth_m) & (depth_m > 0)
    depth = torch.from_numpy(np.where(valid, depth_m, 0).astype(np.float32))[None, None]
    mask = torch.from_numpy(valid.astype(np.float32))[None, None]
    # A copy in float: the colour may be a read-only view of a message buffer.
    colour = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    filled = initial_fill(depth.to(device), mask.to(device), colour.to(device), kind,
                          fill_iterations, fill_solver, fill_guide)
    return filled[0, 0].float().cpu().numpy()


class GraphCaptureError(RuntimeError):
    """The model's forward pass could not be captured as a CUDA graph."""


class _GraphedForward:
    """
    A model's forward pass replayed from CUDA graphs, one graph per input shape and layout.

    Per frame the CPU then issues a few copies and one graph launch instead of thousands of
    small kernels (about 6,000 in the initial fill of a 640x480 frame with large holes; see
    docs/architecture.md), which is what bounds a small network's latency on a GPU. The first
    frame of each shape runs the model twice eagerly (cuDNN and cuFFT choices, the model's own
    caches) and captures the third run.

    :param model: The network, already on its CUDA device and in eval mode; its ``sync_free``
        is switched on, as capture needs.
    :param dtype: Autocast dtype, or None for fp32.
    """

    def __init__(self, model: S2ML, dtype: Optional[torch.dtype]) -> None:
        self.model = model
        self.dtype = dtype
        self._graphs: Dict[tuple, Tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph,
                                        List[torch.Tensor]]] = {}

    def _autocast(self):
        # The autocast weight cache would hold tensors made outside the graph's memory pool.
        return torch.autocast('cuda', dtype=self.dtype, enabled=self.dtype is not None,
                              cache_enabled=False)

    def _capture(self, rgb: torch.Tensor, depth: torch.Tensor,
                 hole_share: Optional[torch.Tensor]) -> tuple:
        static_rgb, static_depth = rgb.clone(), depth.clone()
        static_share = None if hole_share is None else hole_share.clone()
        self.model.sync_free = True
        with torch.cuda.device(rgb.device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), self._autocast():
                for _ in range(2):
                    self.model(static_rgb, static_depth, hole_share=static_share)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), self._autocast():
                outputs = self.model(static_rgb, static_depth, hole_share=static_share)
        return static_rgb, static_depth, static_share, graph, outputs

    def __call__(self, rgb: torch.Tensor, depth: torch.Tensor,
                 hole_share: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """
        Run the model on one batch.

        :param hole_share: The model's ``hole_share`` input (needed when its config fades the
            change in large holes), or None.
        :return: Every stage's depth; tensors owned by the graph and overwritten by the next
            call of the same shape, so read them before calling again.
        """
        key = (tuple(rgb.shape), rgb.stride(), tuple(depth.shape), depth.stride(),
               hole_share is None)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(rgb, depth, hole_share)
            except RuntimeError as exc:
                self.model.sync_free = False
                raise GraphCaptureError(f'CUDA graph capture failed for input '
                                        f'{tuple(rgb.shape)}: {exc}') from exc
            self._graphs[key] = entry
            _logger.info('captured a CUDA graph for input %s', 'x'.join(map(str, rgb.shape)))
        static_rgb, static_depth, static_share, graph, outputs = entry
        static_rgb.copy_(rgb)
        static_depth.copy_(depth)
        if static_share is not None:
            static_share.copy_(hole_share)
        graph.replay()
        return outputs


class DepthCompletionPredictor:
    """
    Complete raw depth images with an S2ML model.

    >>> predictor = DepthCompletionPredictor.from_checkpoint('s2ml_tiny.safetensors')
    >>> completed = predictor.predict(rgb, depth_m)   # doctest: +SKIP

    :param model: The network (moved to ``device`` and put in eval mode here).
    :param info: What its checkpoint says about it.
    :param device: Where to run.
    :param precision: 'fp32', or 'fp16' / 'bf16' autocast on CUDA (the FFT stays float32).
    :param keep_measured: Return measured pixels exactly as measured (live-settable).
    :param flip_average: Also run the frame mirrored left-right and average the two results
        (live-settable). The network is not exactly mirror-symmetric, so the average is
        mirror-consistent and removes part of its error, at twice the compute (one batch of
        two); see docs/training_log.md.
    :param channels_last: Use channels-last memory format (faster convolutions on CUDA);
        None = on for CUDA, off for CPU.
    :param compile_model: Wrap the model in torch.compile: False, True (default mode) or a
        torch.compile mode. 'reduce-overhead' failed on a GPU with torch 2.11; ``cuda_graph``
        is the graph path built for this model (docs/architecture.md).
    :param cuda_graph: Replay the forward pass from a CUDA graph captured on the first frame of
        each size (:class:`_GraphedForward`); CUDA only, and not with ``compile_model``. If the
        capture fails the predictor warns and runs without graphs.
    """

    def __init__(self, model: S2ML, info: CheckpointInfo, device: torch.device,
                 precision: str = 'fp32', keep_measured: bool = False,
                 channels_last: Optional[bool] = None,
                 compile_model: Union[bool, str] = False, flip_average: bool = False,
                 cuda_graph: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'unknown precision {precision!r}; accepted: {PRECISIONS}')
        if precision != 'fp32' and device.type != 'cuda':
            _logger.warning('precision %s needs CUDA; running fp32 on %s', precision, device)
            precision = 'fp32'
        self.device = device
        self.precision = precision
        self.info = info
        self.keep_measured = keep_measured
        self.flip_average = flip_average
        self.channels_last = device.type == 'cuda' if channels_last is None else channels_last
        model = model.to(device).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if cuda_graph and device.type != 'cuda':
            raise ValueError(f'cuda_graph needs a CUDA device, got {device}')
        if cuda_graph and compile_model:
            raise ValueError('cuda_graph and compile_model cannot be combined; '
                             "compile_model='reduce-overhead' captures CUDA graphs itself")
        self.cuda_graph = cuda_graph
        if self.cuda_graph:
            self._forward = _GraphedForward(model, _AUTOCAST_DTYPES.get(precision))
        elif compile_model:
            mode = compile_model if isinstance(compile_model, str) else None
            self._forward = torch.compile(model, mode=mode, dynamic=False)
        else:
            self._forward = model
        # Page-locked staging buffers, reused while the frame size stays the same, make the
        # host-to-GPU copies asynchronous and avoid a fresh pinned allocation per frame. Reuse is
        # safe because every call ends with a device-to-host copy that waits for the GPU.
        self._staging: dict = {}

    @classmethod
    def from_checkpoint(cls, checkpoint: Optional[Union[str, Path]] = None,
                        device: Union[str, torch.device] = 'auto', precision: str = 'fp32',
                        keep_measured: bool = False, channels_last: Optional[bool] = None,
                        compile_model: Union[bool, str] = False, flip_average: bool = False,
                        cuda_graph: bool = False) -> 'DepthCompletionPredictor':
        """
        Load a checkpoint (or the package's default weights) into a ready predictor.

        :param checkpoint: Path to a ``.safetensors`` checkpoint; None = the default weights.
        :param device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        :param precision: 'fp32', 'fp16' or 'bf16' (reduced precision only on CUDA).
        :param keep_measured: Return measured pixels exactly as measured.
        :param channels_last: See the class docstring.
        :param compile_model: See the class docstring.
        :param flip_average: See the class docstring.
        :param cuda_graph: See the class docstring.
        :raises DefaultWeightsMissingError: If checkpoint is None and no default weights ship.
        :raises CheckpointError: If the file is missing, corrupted or inconsistent.
        """
        if checkpoint is None:
            if not DEFAULT_CHECKPOINT.is_file():
                raise DefaultWeightsMissingError(
                    f'no checkpoint given and the default weights {DEFAULT_CHECKPOINT} are not '
                    f'installed; pass a checkpoint trained with training/train.py')
            checkpoint = DEFAULT_CHECKPOINT
        resolved = resolve_device(device)
        model, info = load_checkpoint(checkpoint, device='cpu')
        _logger.info('loaded S2ML %s from %s (sha256 %s) on %s', info.variant, info.path,
                     info.sha256[:12], resolved)
        return cls(model, info, resolved, precision=precision, keep_measured=keep_measured,
                   channels_last=channels_last, compile_model=compile_model,
                   flip_average=flip_average, cuda_graph=cuda_graph)

    @staticmethod
    def _check_inputs(rgb: np.ndarray, depth_m: np.ndarray) -> None:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
                or rgb.shape[2] != 3:
            raise PredictorInputError(
                f'rgb must be a uint8 array [H, W, 3], got '
                f'{getattr(rgb, "dtype", type(rgb).__name__)} {getattr(rgb, "shape", "")}')
        if not isinstance(depth_m, np.ndarray) or depth_m.ndim != 2 \
                or depth_m.dtype not in (np.float32, np.float64):
            raise PredictorInputError(
                f'depth_m must be a float32 array [H, W] in meters, got '
                f'{getattr(depth_m, "dtype", type(depth_m).__name__)} '
                f'{getattr(depth_m, "shape", "")}')
        if depth_m.shape != rgb.shape[:2]:
            raise PredictorInputError(
                f'rgb {rgb.shape[1]}x{rgb.shape[0]} and depth {depth_m.shape[1]}x'
                f'{depth_m.shape[0]} (WxH) differ; resize one to the other first')
        if min(depth_m.shape) < 1:
            raise PredictorInputError(f'empty image of shape {depth_m.shape}')

    def _upload(self, name: str, array: np.ndarray) -> torch.Tensor:
        """Copy a host array to the device (through a reused pinned buffer on CUDA)."""
        if not array.flags.writeable:  # e.g. a view of a message buffer; torch wants to own it
            array = array.copy()
        host = torch.from_numpy(array)
        if self.device.type != 'cuda':
            return host
        staging = self._staging.get(name)
        if staging is None or staging.shape != host.shape or staging.dtype != host.dtype:
            staging = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
            self._staging[name] = staging
        staging.copy_(host)
        return staging.to(self.device, non_blocking=True)

    def _autocast(self):
        if self.precision == 'fp32':
            return nullcontext()
        return torch.autocast(device_type='cuda', dtype=_AUTOCAST_DTYPES[self.precision])

    @torch.inference_mode()
    def _run(self, rgb: np.ndarray, depth_m: np.ndarray) -> List[torch.Tensor]:
        """:return: Every stage's depth, [1, 1, H, W] tensors on the device."""
        self._check_inputs(rgb, depth_m)
        rgb_t = self._upload('rgb', np.ascontiguousarray(rgb))
        depth_t = self._upload('depth', np.ascontiguousarray(depth_m, dtype=np.float32))
        # uint8 HWC -> float BCHW in [0, 1]; done on the device, where it is cheapest.
        rgb_t = rgb_t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        depth_t = depth_t[None, None]
        share_t = None
        if self.model.config.fades_large_holes:
            # Labelled here, from the host copy, so the device never waits on the host.
            valid = np.isfinite(depth_m) & (depth_m > 0)
            share_t = self._upload('hole_share', hole_region_share(valid))[None, None]
        # Read once: the node may change it from another thread while this frame runs.
        flip_average = self.flip_average
        if flip_average:
            # The frame and its mirror image as one batch of two: one forward pass.
            rgb_t = torch.cat([rgb_t, rgb_t.flip(-1)])
            depth_t = torch.cat([depth_t, depth_t.flip(-1)])
            if share_t is not None:
                share_t = torch.cat([share_t, share_t.flip(-1)])
        if self.channels_last:
            rgb_t = rgb_t.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            try:
                stages = self._forward(rgb_t, depth_t, hole_share=share_t)
            except GraphCaptureError as exc:
                # Slower, never wrong: a frame is not lost to a capture this torch cannot do.
                _logger.warning('%s; running without CUDA graphs', exc)
                self.cuda_graph = False
                self._forward = self.model
                stages = self._forward(rgb_t, depth_t, hole_share=share_t)
        if flip_average:
            stages = [0.5 * (s[:1].float() + s[1:].float().flip(-1)) for s in stages]
        return stages

    def initial_fill(self, rgb: np.ndarray, depth_m: np.ndarray,
                     kind: Optional[str] = None) -> np.ndarray:
        """
        Compute the network's parameter-free initial fill D_0 alone, as its config does.

        :param rgb: Colour image uint8 [H, W, 3].
        :param depth_m: Raw depth float32 [H, W] in meters; 0 or NaN = missing.
        :param kind: Another fill than the config's (:data:`s2ml_ros.model.config.
            INITIAL_FILLS`), with the config's sweeps and guide.
        :return: D_0, float32 [H, W] in meters.
        """
        self._check_inputs(rgb, depth_m)
        cfg = self.model.config
        return initial_fill_image(rgb, depth_m, kind or cfg.initial_fill, cfg.fill_iterations,
                                  cfg.fill_solver, cfg.fill_guide, self.device)

    def estimate_colour_offset(self, rgb: np.ndarray, depth_m: np.ndarray,
                               max_offset: int = 3, draws: int = 3,
                               min_gain: float = 0.15) -> ColourOffset:
        """
        Estimate the colour-to-depth offset of one frame, scored with a colour-guided fill.

        See :func:`s2ml_ros.registration.estimate_colour_offset`. The fill is
        'guided_multigrid' with this network's sweeps and guide (whatever its own initial fill
        is: only a colour-guided fill tells offsets apart). The default ``min_gain`` is above
        every gain found on 96 exactly registered simulated frames (at most 0.14). 13-19
        offsets times ``draws`` fills: 16-19 frames' worth of completion (2.6-3.6 s at 640x480
        on 2 CPU cores, ``bench/bench_colour_offset.py``), so this is a calibration step, not
        a per-frame one.

        :return: The offset: move the colour by it with
            :func:`s2ml_ros.registration.shift_image`, or set it as the node parameters.
        """
        self._check_inputs(rgb, depth_m)

        def guided_fill(colour: np.ndarray, depth: np.ndarray) -> np.ndarray:
            return self.initial_fill(colour, depth, 'guided_multigrid')
        return estimate_colour_offset(rgb, np.asarray(depth_m, np.float32), guided_fill,
                                      max_offset=max_offset, draws=draws, min_gain=min_gain)

    @staticmethod
    def _to_numpy(stage: torch.Tensor) -> np.ndarray:
        return stage[0, 0].float().cpu().numpy()

    def predict_stages(self, rgb: np.ndarray, depth_m: np.ndarray) -> List[np.ndarray]:
        """
        Run the network and return every stage's depth (for inspection and evaluation).

        :return: List of float32 [H, W] depth maps in meters, final stage last.
        """
        return [self._to_numpy(stage) for stage in self._run(rgb, depth_m)]

    def predict(self, rgb: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """
        Complete one depth image.

        :param rgb: Colour image uint8 [H, W, 3], RGB order, registered to the depth.
        :param depth_m: Raw depth float32 [H, W] in meters; 0 or NaN = missing.
        :return: Completed depth float32 [H, W] in meters, finite and >= 0 everywhere; with
            ``keep_measured`` the measured pixels are returned exactly as given.
        :raises PredictorInputError: For a wrong dtype, shape, or mismatched sizes.
        """
        # Only the final stage leaves the device: one copy per frame, not one per stage.
        completed = self._to_numpy(self._run(rgb, depth_m)[-1])
        if self.keep_measured:
            measured = np.isfinite(depth_m) & (depth_m > 0)
            completed = np.where(measured, depth_m, completed).astype(np.float32, copy=False)
        return completed
