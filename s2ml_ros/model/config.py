"""
S2ML model configuration: one frozen dataclass and the named variants.

Standard library only, so checkpoints can be described and validated without torch.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping


INITIAL_FILLS = ('guided_multigrid', 'local_pyramid', 'pyramid', 'zeros')
FILL_SOLVERS = ('sor', 'jacobi')
FILL_GUIDES = ('chroma', 'rgb', 'gray')
# Settings of the parameter-free initial fill: no weights depend on them, so trained weights
# can be fine-tuned or run on other values (measure it; the cascade learned its own fill).
FILL_FIELDS = ('initial_fill', 'fill_iterations', 'fill_solver', 'fill_guide')
# Fields without weights: trained weights run under other values without retraining.
PARAMETER_FREE_FIELDS = FILL_FIELDS + ('depth_scale_cap_m', 'far_change_cap', 'large_hole_change',
                                       'large_hole_start', 'large_hole_end')


class ConfigError(ValueError):
    """Raised for an invalid or unknown model configuration."""


def _is_real(value: Any) -> bool:
    """:return: Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value and abs(value) != float('inf')


def _check_cap(name: str, value: Any, what: str) -> None:
    """
    Check a cap setting: a finite real number >= 0, where 0 turns the cap off.

    :raises ConfigError: Naming ``name`` and the bad value otherwise.
    """
    if not (_is_real(value) and value >= 0.0):
        raise ConfigError(f'{name} must be a finite {what} >= 0 (0 = off), got {value!r}')


def _check_large_hole_fade(change: Any, start: Any, end: Any) -> None:
    """
    Check the fade of the cascade's change in large hole regions.

    :raises ConfigError: Naming the bad value and the accepted range.
    """
    if not (_is_real(change) and 0.0 <= change <= 1.0):
        raise ConfigError(f'large_hole_change must be a share in [0, 1] (1 = off), '
                          f'got {change!r}')
    if not (_is_real(start) and 0.0 < start <= 1.0):
        raise ConfigError(f'large_hole_start must be a share of the frame in (0, 1], '
                          f'got {start!r}')
    if not (_is_real(end) and start <= end <= 1.0):
        raise ConfigError(f'large_hole_end must be a share of the frame in '
                          f'[large_hole_start = {start!r}, 1], got {end!r}')


@dataclass(frozen=True)
class S2MLConfig:
    """
    Architecture of one S2ML network (see docs/architecture.md for the block diagram).

    :param embed_dim: Feature channels C of both streams and of every fusion pair.
    :param num_pairs: K, the number of cascaded spatio-spectral fusion pairs; each emits a depth.
    :param blocks_per_pair: N, Swin-Conv blocks in each spatial fusion module (alternating W/SW).
    :param window_size: Side of the square attention windows, in feature pixels.
    :param head_dim: Channels per attention head; the transformer half of a Swin-Conv block
        has embed_dim / 2 channels, so heads = embed_dim / 2 / head_dim.
    :param mlp_ratio: Hidden width of the Swin MLP relative to its input width.
    :param downscale: r, the PixelUnshuffle factor of the stems; the cascade runs at 1/r of the
        input resolution and every head PixelShuffles its residual back to full resolution.
    :param max_depth_m: Depth normaliser d_max in meters (NYU and SUN RGB-D protocols use 10 m).
    :param amplitude_log_bound: Bound of the log-amplitude correction, so exp() cannot overflow.
    :param initial_fill: Initial depth D_0 of the cascade, parameter-free: 'guided_multigrid'
        (default; a fast multigrid approximation of Levin et al.'s colorization fill: smooth
        surfaces that stop at colour edges), 'pyramid' (a coarse-to-fine average of valid
        neighbours), 'local_pyramid' (the same, preferring the neighbours centred on the hole
        pixel at each level, so fewer holes are filled across depth edges) or 'zeros' (raw
        depth with zeros in the holes, the most literal reading).
    :param fill_iterations: Sweeps of the 'guided_multigrid' fill at full resolution (doubled
        per coarser level, at most 4x for 'sor' and 16x for 'jacobi'); more sweeps come closer
        to the exact colorization solve at proportionally more cost (simulated test set, fill
        alone, Jacobi: hole RMSE 0.150 m with 5, 0.135 with 20; SOR 0.129 with 20; 0.128
        exact). Parameter-free like the fill itself.
    :param fill_solver: Sweeps of the 'guided_multigrid' fill: 'sor' (Gauss-Seidel over a 2x2
        checkerboard with over-relaxation, closer to the exact solve for the same sweeps) or
        'jacobi' (what checkpoints written before this field were trained with).
    :param fill_guide: Image whose colour affinities guide the 'guided_multigrid' fill:
        'chroma' (BT.601 luma and chroma, chroma weighted 3x, so surfaces of different colour
        stay apart even where texture and shading vary brightness as much), 'rgb' (colour
        differences: surfaces of equal brightness and different hue stay apart) or 'gray' (the NYU
        toolbox's luma, what checkpoints written before this field were trained with).
        Simulated test set, fill alone: hole RMSE 0.108 m with 'chroma', 0.114 with 'rgb',
        0.129 with 'gray'.
    :param depth_scale_cap_m: When > 0, a frame whose measured depths have a 90th percentile
        above this many meters is scaled down about the camera until it is this, before the
        initial fill and the network, and the output scaled back up: deep rooms reach the
        network at the depth scale it was trained on. Parameter-free; 0 (the default, and what
        checkpoints written before this field ran) leaves every frame as measured.
    :param far_change_cap: When > 0, every depth the cascade emits is at most D_0 * (1 + c):
        the network may bring a pixel closer than its initial fill by any amount but place it
        farther by at most this share. A network trained on simulated rooms, whose holes are
        mostly shadows with the far surface behind them, pushes real holes over plain surfaces
        away (docs/training_log.md); an obstacle placed too far is also the costlier error
        for a robot. Parameter-free; 0 (the default, and what checkpoints written before this
        field ran) leaves the output as the network gives it.
    :param large_hole_change: Share in [0, 1] of the cascade's change to D_0 kept inside the
        largest hole regions (8-connected regions of missing input pixels, measured as a share
        of the frame): 1 keeps it everywhere (the default, and what checkpoints written before
        this field ran). Between ``large_hole_start`` and ``large_hole_end`` the share kept
        falls linearly from 1 to this value, so the output does not jump when a region grows
        by a pixel. A quarter of the simulated test set's hole pixels lie in regions above 10%
        of the frame, three quarters of the real frames' hidden ones: border bands and
        dropouts joined into large areas, where the network extrapolates further than it was
        trained to and its change cost more than it gained (docs/training_log.md).
        Parameter-free.
    :param large_hole_start: Region share of the frame, in (0, 1], from which the change fades.
    :param large_hole_end: Region share, in [``large_hole_start``, 1], from which only
        ``large_hole_change`` of it is kept.
    :param variant: Name of the variant this config came from ('custom' otherwise).
    """

    embed_dim: int = 32
    num_pairs: int = 2
    blocks_per_pair: int = 1
    window_size: int = 8
    head_dim: int = 32
    mlp_ratio: float = 2.0
    downscale: int = 4
    max_depth_m: float = 10.0
    amplitude_log_bound: float = 5.0
    initial_fill: str = 'guided_multigrid'
    fill_iterations: int = 20
    fill_solver: str = 'sor'
    fill_guide: str = 'chroma'
    depth_scale_cap_m: float = 0.0
    far_change_cap: float = 0.0
    large_hole_change: float = 1.0
    large_hole_start: float = 0.1
    large_hole_end: float = 0.3
    variant: str = 'custom'

    def __post_init__(self) -> None:
        positive = ('embed_dim', 'num_pairs', 'blocks_per_pair', 'window_size', 'head_dim',
                    'downscale', 'fill_iterations')
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f'{name} must be an integer >= 1, got {value!r}')
        if self.embed_dim % 2:
            raise ConfigError(
                f'embed_dim must be even (split into conv and transformer halves), '
                f'got {self.embed_dim}')
        if (self.embed_dim // 2) % self.attention_head_dim:
            raise ConfigError(
                f'embed_dim / 2 = {self.embed_dim // 2} is not a multiple of the head width '
                f'{self.attention_head_dim}')
        if not self.mlp_ratio > 0:
            raise ConfigError(f'mlp_ratio must be > 0, got {self.mlp_ratio}')
        if not self.max_depth_m > 0:
            raise ConfigError(f'max_depth_m must be > 0 meters, got {self.max_depth_m}')
        if self.initial_fill not in INITIAL_FILLS:
            raise ConfigError(
                f'initial_fill must be one of {INITIAL_FILLS}, got {self.initial_fill!r}')
        if self.fill_solver not in FILL_SOLVERS:
            raise ConfigError(
                f'fill_solver must be one of {FILL_SOLVERS}, got {self.fill_solver!r}')
        if self.fill_guide not in FILL_GUIDES:
            raise ConfigError(
                f'fill_guide must be one of {FILL_GUIDES}, got {self.fill_guide!r}')
        _check_cap('depth_scale_cap_m', self.depth_scale_cap_m, 'number of meters')
        _check_cap('far_change_cap', self.far_change_cap, 'share of the initial fill')
        _check_large_hole_fade(self.large_hole_change, self.large_hole_start,
                               self.large_hole_end)
        if not self.amplitude_log_bound > 0:
            raise ConfigError(
                f'amplitude_log_bound must be > 0, got {self.amplitude_log_bound}')

    @property
    def attention_head_dim(self) -> int:
        """Head width actually used: min(head_dim, C/2), so narrow models keep one head."""
        return min(self.head_dim, self.embed_dim // 2)

    @property
    def fades_large_holes(self) -> bool:
        """Whether the cascade's change is faded in large hole regions (``large_hole_change``)."""
        return self.large_hole_change < 1.0

    @property
    def num_heads(self) -> int:
        """Attention heads in the transformer half of each Swin-Conv block."""
        return (self.embed_dim // 2) // self.attention_head_dim

    @property
    def pad_multiple(self) -> int:
        """Input sides are padded (bottom/right) to a multiple of this many pixels."""
        return self.window_size * self.downscale

    def to_dict(self) -> Dict[str, Any]:
        """:return: Plain dict of every field, JSON-serialisable."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'S2MLConfig':
        """
        Rebuild a config from :meth:`to_dict` output.

        :raises ConfigError: On unknown fields, naming them and the accepted ones.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f'unknown config fields {unknown}; accepted: {sorted(known)}')
        return cls(**dict(values))


# Named variants. Sizes are this implementation's, measured by bench/bench_model.py; the paper's
# own widths and depths could not be read (see docs/architecture.md).
S2ML_VARIANTS: Dict[str, S2MLConfig] = {
    # For unit tests: every component present, as small as possible.
    'test': S2MLConfig(embed_dim=8, num_pairs=2, blocks_per_pair=2, window_size=4, head_dim=4,
                       mlp_ratio=2.0, downscale=2, variant='test'),
    # Real-time: the smallest model that keeps every S2ML component (two fusion pairs, shifted
    # and unshifted windows, amplitude and phase branches), run at 1/4 resolution.
    'tiny': S2MLConfig(embed_dim=32, num_pairs=2, blocks_per_pair=2, window_size=8, head_dim=16,
                       mlp_ratio=2.0, downscale=4, variant='tiny'),
    # Closer to the paper's description at a robot-friendly cost: 4 pairs at 1/2 resolution.
    'base': S2MLConfig(embed_dim=64, num_pairs=4, blocks_per_pair=2, window_size=8, head_dim=32,
                       mlp_ratio=4.0, downscale=2, variant='base'),
    # The most literal reading: full-resolution cascade, for the paper's 256x256 protocol.
    'base_r1': S2MLConfig(embed_dim=64, num_pairs=4, blocks_per_pair=2, window_size=8,
                          head_dim=32, mlp_ratio=4.0, downscale=1, variant='base_r1'),
}


def get_config(variant: str) -> S2MLConfig:
    """
    Look up a named variant.

    :raises ConfigError: For an unknown name, listing the known ones.
    """
    try:
        return S2ML_VARIANTS[variant]
    except KeyError:
        raise ConfigError(
            f'unknown S2ML variant {variant!r}; known: {sorted(S2ML_VARIANTS)}') from None
