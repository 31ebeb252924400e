"""Tests of the S2ML network: shapes, gradients, windows, spectral invariants."""

from dataclasses import replace

import numpy as np
import pytest
from s2ml_ros.model import build_s2ml, ConfigError, get_config, S2ML, S2MLConfig
from s2ml_ros.model.hole_regions import hole_region_share
from s2ml_ros.model.layers import (_neighbour_index, colour_affinities, guided_multigrid_fill,
                                   initial_fill, pyramid_fill, shifted_window_mask,
                                   SpectralFusion, SwinBlock, window_partition, window_reverse)
import torch
from torch.utils._python_dispatch import TorchDispatchMode


def _inputs(height, width, batch=2, hole_fraction=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=gen)
    depth = 0.5 + 4.0 * torch.rand(batch, 1, height, width, generator=gen)
    holes = torch.rand(batch, 1, height, width, generator=gen) < hole_fraction
    depth[holes] = 0.0
    depth[:, :, : height // 4, : width // 3] = 0.0  # one large hole as well
    return rgb, depth


def _zero_heads(model):
    """Silence every fusion pair's output head, so each stage emits the initial fill D_0."""
    for pair in model.pairs:
        torch.nn.init.zeros_(pair.head[2].weight)
        torch.nn.init.zeros_(pair.head[2].bias)


def _guided_test_model():
    """:return: (config, model in eval mode) of the test variant on the guided multigrid fill."""
    config = S2MLConfig(**{**get_config('test').to_dict(), 'initial_fill': 'guided_multigrid'})
    return config, build_s2ml(config).eval()


@pytest.mark.parametrize('variant', ['test', 'tiny'])
@pytest.mark.parametrize('size', [(61, 83), (32, 32), (17, 100)])
def test_forward_any_size_returns_every_stage(variant, size):
    model = build_s2ml(variant)
    rgb, depth = _inputs(*size)
    with torch.inference_mode():
        stages = model(rgb, depth)
    assert len(stages) == model.config.num_pairs
    for stage in stages:
        assert stage.shape == (2, 1) + size
        assert torch.isfinite(stage).all()
        assert (stage >= 0).all()  # eval mode clamps


@pytest.mark.parametrize('fill', ['empty', 'full', 'nan'])
def test_forward_finite_without_any_measurement_or_without_holes(fill):
    model = build_s2ml('test')
    rgb, depth = _inputs(40, 56, hole_fraction=0.0)
    if fill == 'empty':
        depth.zero_()
    elif fill == 'nan':
        depth[:, :, ::3] = float('nan')
    elif fill == 'full':
        depth = 0.5 + depth.abs()
    with torch.inference_mode():
        stages = model(rgb, depth)
    assert all(torch.isfinite(s).all() for s in stages)


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = build_s2ml('test').train()
    # The spectral branches start at exactly zero (identity at init), which blocks gradients
    # to the layers before them; perturb them so connectivity, not init, is tested.
    for module in model.modules():
        if isinstance(module, SpectralFusion):
            for branch in (module.amp_fuse, module.pha_fuse):
                torch.nn.init.normal_(branch[-1].weight, std=0.05)
    rgb, depth = _inputs(29, 37)
    target = 0.5 + 4.0 * torch.rand(2, 1, 29, 37)
    stages = model(rgb, depth)
    loss = sum((s - target).abs().mean() for s in stages)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f'no gradient for {name}'
        assert torch.isfinite(param.grad).all(), f'non-finite gradient for {name}'
        assert param.grad.abs().sum() > 0, f'zero gradient for {name}'


def test_stages_refine_progressively_from_the_initial_fill():
    # Each stage adds a residual to the previous one: with the heads silenced, every stage
    # returns D_0, which keeps every measured pixel and fills holes from their surroundings.
    model = build_s2ml('test')
    _zero_heads(model)
    rgb, depth = _inputs(24, 40)
    measured = depth > 0
    with torch.inference_mode():
        stages = model(rgb, depth)
    for stage in stages:
        torch.testing.assert_close(stage[measured], depth[measured])
        assert (stage[~measured] >= 0.5).all() and (stage[~measured] <= 4.5).all()
    zeros = build_s2ml(S2MLConfig(**{**get_config('test').to_dict(), 'initial_fill': 'zeros'}))
    zeros.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(zeros(rgb, depth)[-1], depth)  # D_0 = raw, zeros in holes


def test_pyramid_fill_keeps_measurements_and_fills_from_surroundings():
    depth = torch.full((1, 1, 13, 17), 2.5)
    mask = (torch.rand(1, 1, 13, 17, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    filled = pyramid_fill(depth * mask, mask)
    torch.testing.assert_close(filled, depth)  # a constant surface is recovered exactly
    # A hole between a near and a far region gets a value between them.
    step = torch.ones(1, 1, 8, 16)
    step[..., 8:] = 3.0
    hole = torch.ones_like(step)
    hole[..., 6:10] = 0
    out = pyramid_fill(step * hole, hole)
    assert torch.equal(out[hole > 0], step[hole > 0])
    assert (out[..., 6:10] > 1.0).all() and (out[..., 6:10] < 3.0).all()
    assert out[..., 6].mean() < out[..., 9].mean()
    empty = torch.zeros(2, 1, 5, 7)
    assert torch.equal(pyramid_fill(empty, empty), empty)


def test_local_pyramid_fill_takes_the_near_side_of_a_depth_edge():
    # A hole on a near surface (1 m) right beside a far one (4 m) whose boundary falls inside
    # a pooling cell: the grid-aligned fill mixes in the far side, the local fill must not.
    depth = torch.ones(1, 1, 32, 32)
    depth[..., 21:] = 4.0
    mask = torch.ones_like(depth)
    mask[..., 8:20, 17:20] = 0  # hole ends one column before the edge at 21
    grid = pyramid_fill(depth * mask, mask)
    local = pyramid_fill(depth * mask, mask, local=True)
    hole = mask == 0
    assert torch.equal(local[mask > 0], depth[mask > 0])
    local_error = (local - depth)[hole].abs()
    grid_error = (grid - depth)[hole].abs()
    # Every hole pixel whose centred 3x3 window reaches the near side copies it exactly.
    assert torch.equal(local[..., 8:20, 17], depth[..., 8:20, 17])
    assert torch.equal(local[..., 8:20, 19], depth[..., 8:20, 19])
    assert local_error.mean() < 0.5 * grid_error.mean()
    # Constant surfaces and empty images behave as in the grid-aligned fill.
    const = torch.full((1, 1, 13, 17), 2.5)
    sparse = (torch.rand(1, 1, 13, 17, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    torch.testing.assert_close(pyramid_fill(const * sparse, sparse, local=True), const)
    empty = torch.zeros(1, 1, 5, 7)
    assert torch.equal(pyramid_fill(empty, empty, local=True), empty)


def test_colour_affinities_are_normalised_and_stop_at_colour_edges():
    gray = torch.zeros(2, 1, 6, 8)
    gray[..., 4:] = 1.0
    gray[1] = 1.0 - gray[1]  # second image: same edge, inverted, one flat index space
    pixels = torch.arange(gray.numel())
    neighbours = _neighbour_index(6, 8, pixels)
    # Neighbours stay inside their own image, clamped at its border.
    assert (neighbours // 48 == (pixels // 48)[:, None]).all()
    weights = colour_affinities(gray.flatten(), pixels, neighbours).view(2, 6, 8, 8)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6, 8))
    # A pixel beside the edge (column 3): its right-hand neighbours (dx = +1: offsets 2, 4
    # and 7) are across it and get almost nothing; on a flat patch all 8 share evenly.
    for image in range(2):
        assert weights[image, 2, 3, [2, 4, 7]].sum() < 0.01
        torch.testing.assert_close(weights[image, 2, 1], torch.full((8,), 1 / 8))


def test_colour_affinities_on_rgb_separate_equal_brightness_hues():
    # Red beside green of the same BT.601 luma: grey sees one flat patch, colour an edge.
    red, green = torch.tensor([0.587, 0.0, 0.0]), torch.tensor([0.0, 0.299, 0.0])
    rgb = torch.where(torch.arange(8).view(1, 1, 1, 8) < 4, red.view(1, 3, 1, 1),
                      green.view(1, 3, 1, 1)).expand(1, 3, 6, 8)
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    pixels = torch.arange(48)
    neighbours = _neighbour_index(6, 8, pixels)
    flat_rgb = rgb.transpose(0, 1).reshape(3, -1)
    by_colour = colour_affinities(flat_rgb, pixels, neighbours).view(6, 8, 8)
    by_grey = colour_affinities(luma.flatten(), pixels, neighbours).view(6, 8, 8)
    torch.testing.assert_close(by_colour.sum(-1), torch.ones(6, 8))
    assert by_colour[2, 3, [2, 4, 7]].sum() < 0.01
    torch.testing.assert_close(by_grey[2, 3], torch.full((8,), 1 / 8))
    # One channel given as [1, P] is the grey case exactly.
    assert torch.equal(colour_affinities(luma.reshape(1, -1), pixels, neighbours).view(6, 8, 8),
                       by_grey)


def test_initial_fill_guides_keep_equal_brightness_surfaces_apart():
    # Two surfaces (1 m and 3 m) of the same luma and different hue, both with a strong
    # brightness texture, meet under a wide hole. Grey sees no boundary; RGB sees it through
    # the texture; weighing chroma over luma sees it best.
    depth = torch.ones(1, 1, 48, 64)
    depth[..., 32:] = 3.0
    warm, cool = torch.tensor([0.55, 0.35, 0.30]), torch.tensor([0.35, 0.42, 0.45])
    rgb = torch.where(depth > 2, cool.view(1, 3, 1, 1), warm.view(1, 3, 1, 1))
    rgb = rgb * (1 + 0.5 * torch.rand(1, 1, 48, 64, generator=torch.Generator().manual_seed(0)))
    mask = torch.ones_like(depth)
    mask[..., 8:40, 16:48] = 0
    error = {}
    for guide in ('chroma', 'rgb', 'gray'):
        filled = initial_fill(depth * mask, mask, rgb, 'guided_multigrid', 20, 'sor', guide)
        error[guide] = float((filled - depth)[mask == 0].abs().mean())
    assert error['chroma'] < 0.6 * error['rgb'] and error['rgb'] < 0.2 * error['gray'], error
    with pytest.raises(ValueError, match="fill_guide must be one of .*got 'hsv'"):
        initial_fill(depth * mask, mask, rgb, 'guided_multigrid', 20, 'sor', 'hsv')


def test_guided_multigrid_fill_follows_colour_edges_across_a_hole():
    # Two surfaces (1 m left, 3 m right) of different colour; a wide hole covers their
    # boundary. Colour says where the boundary runs, so the guided fill puts each side's
    # depth on its own side; a colour-blind average blurs the two across the hole.
    depth = torch.ones(1, 1, 48, 64)
    depth[..., 37:] = 3.0
    gray = torch.where(depth > 2, torch.tensor(0.8), torch.tensor(0.2))
    mask = torch.ones_like(depth)
    mask[..., 8:40, 20:52] = 0
    hole = mask == 0
    holed = depth * mask
    inputs = [t.clone() for t in (holed, mask, gray)]
    guided = guided_multigrid_fill(holed, mask, gray, 20)
    # The sweeps work in place on their own tensors, never on the inputs.
    assert all(torch.equal(a, b) for a, b in zip(inputs, (holed, mask, gray)))
    blind = pyramid_fill(depth * mask, mask, local=True)
    assert torch.equal(guided[~hole], depth[~hole])
    guided_error = (guided - depth)[hole].abs().mean()
    blind_error = (blind - depth)[hole].abs().mean()
    assert guided_error < 0.3 * blind_error
    # A constant surface comes back exactly; a linear ramp stays close (Laplace-like
    # smoothing is exact for linear surfaces once converged); an empty image stays empty.
    const = torch.full((1, 1, 20, 30), 2.5)
    sparse = (torch.rand(1, 1, 20, 30, generator=torch.Generator().manual_seed(0)) > 0.6)
    sparse = sparse.float()
    flat = torch.full_like(const, 0.5)
    torch.testing.assert_close(guided_multigrid_fill(const * sparse, sparse, flat, 20), const)
    ramp = torch.linspace(1.0, 2.0, 40).expand(1, 1, 32, 40).contiguous()
    ramp_mask = torch.ones_like(ramp)
    ramp_mask[..., 8:24, 10:30] = 0
    ramp_fill = guided_multigrid_fill(ramp * ramp_mask, ramp_mask, torch.full_like(ramp, 0.5),
                                      fine_iterations=40, max_iterations=400)
    assert (ramp_fill - ramp).abs().max() < 0.02
    empty = torch.zeros(1, 1, 9, 11)
    assert torch.equal(guided_multigrid_fill(empty, empty, torch.rand(1, 1, 9, 11), 20), empty)


def test_guided_multigrid_fill_is_not_pulled_by_stray_pixels_in_a_large_hole():
    # A table at 0.8 m with a wide invalid band on the left, as a stereo camera's depth has,
    # and two stray 6.4 m returns inside the band. Held as known coarse cells they dragged the
    # fill of the whole band far; the fill must stay with the table and keep the strays.
    depth = torch.full((1, 1, 96, 128), 0.8)
    mask = torch.ones_like(depth)
    mask[..., :, :40] = 0
    mask[..., 70:72, 0] = 1
    depth[..., 70:72, 0] = 6.4
    gray = torch.full_like(depth, 0.5)
    filled = guided_multigrid_fill(depth * mask, mask, gray, 20)
    band = mask == 0
    assert (filled[band] - 0.8).abs().mean() < 0.1  # 1.08 m when they were known cells
    band[..., 46:96, :24] = False  # the strays' own neighbourhood
    assert (filled[band] - 0.8).abs().max() < 0.02
    assert torch.equal(filled[mask > 0], (depth * mask)[mask > 0])
    # Sparse input (every measured pixel isolated) still fills from all of them.
    sparse = torch.zeros_like(depth)
    sparse[..., ::6, ::6] = 1
    table = torch.full_like(depth, 0.8)
    torch.testing.assert_close(guided_multigrid_fill(table * sparse, sparse, gray, 20), table)


def test_guided_multigrid_initial_fill_in_the_network():
    config, model = _guided_test_model()
    rgb, depth = _inputs(20, 30, batch=1)
    with torch.no_grad():
        outputs = model(rgb, depth)
    assert outputs[-1].shape == depth.shape and torch.isfinite(outputs[-1]).all()
    # With the heads zeroed, the output is D_0 itself: measured pixels pass through and the
    # holes hold the guided fill of the normalised raw depth.
    _zero_heads(model)
    with torch.no_grad():
        d0 = model(rgb, depth)[-1]
    valid = depth > 0
    torch.testing.assert_close(d0[valid], depth[valid])
    m = config.pad_multiple
    pad = ((-30) % m, (-20) % m)
    norm = torch.nn.functional.pad(depth / config.max_depth_m, (0, pad[0], 0, pad[1]))
    colour = torch.nn.functional.pad(rgb, (0, pad[0], 0, pad[1]), mode='replicate')
    # The default guide: BT.601 luma and chroma, chroma weighted 3x.
    ycbcr = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])
    ycbcr[1:] *= 3.0
    guide = torch.einsum('ck,bkhw->bchw', ycbcr, colour)
    expected = guided_multigrid_fill(norm, (norm > 0).float(), guide, config.fill_iterations)
    torch.testing.assert_close(d0, expected[..., :20, :30] * config.max_depth_m)
    # The sweep count is the config's: a quarter of the sweeps, the guided fill's own result.
    fewer_sweeps = build_s2ml(replace(config, fill_iterations=5)).eval()
    fewer_sweeps.load_state_dict(model.state_dict())
    with torch.no_grad():
        d0_5 = fewer_sweeps(rgb, depth)[-1]
    expected_5 = guided_multigrid_fill(norm, (norm > 0).float(), guide, 5)
    torch.testing.assert_close(d0_5, expected_5[..., :20, :30] * config.max_depth_m)
    assert config.fill_iterations == 20 and not torch.allclose(d0_5, d0)
    # So is the solver: Jacobi sweeps (what older weights were trained with) differ.
    jacobi = build_s2ml(replace(config, fill_solver='jacobi')).eval()
    jacobi.load_state_dict(model.state_dict())
    with torch.no_grad():
        d0_jacobi = jacobi(rgb, depth)[-1]
    expected_jacobi = guided_multigrid_fill(norm, (norm > 0).float(), guide, 20,
                                            solver='jacobi')
    torch.testing.assert_close(d0_jacobi, expected_jacobi[..., :20, :30] * config.max_depth_m)
    assert config.fill_solver == 'sor' and not torch.allclose(d0_jacobi, d0)
    # And the guide: plain RGB and grey affinities (what older weights were trained with).
    luma = (colour * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert config.fill_guide == 'chroma'
    for other, other_guide in (('rgb', colour), ('gray', luma)):
        guided = build_s2ml(replace(config, fill_guide=other)).eval()
        guided.load_state_dict(model.state_dict())
        with torch.no_grad():
            d0_other = guided(rgb, depth)[-1]
        expected_other = guided_multigrid_fill(norm, (norm > 0).float(), other_guide, 20)
        torch.testing.assert_close(d0_other, expected_other[..., :20, :30] * config.max_depth_m)
        assert not torch.allclose(d0_other, d0), other


def _exact_colorization(depth, mask, gray):
    # Dense solve of the fill's equations at full resolution: x_r = sum_s w_rs x_s on holes.
    h, w = depth.shape[-2:]
    holes = torch.nonzero(mask.flatten() < 0.5).squeeze(1)
    neighbours = _neighbour_index(h, w, holes)
    weights = colour_affinities(gray.flatten().double(), holes, neighbours)
    system = torch.eye(h * w, dtype=torch.float64)
    system[holes] = 0.0
    system[holes, holes] = 1.0
    system[holes[:, None], neighbours] -= weights
    rhs = (depth * mask).flatten().double()
    return torch.linalg.solve(system, rhs).view(1, 1, h, w).float()


def test_sor_sweeps_come_closer_to_the_exact_fill_than_jacobi_sweeps():
    # Two colour regions at different depths with sloped surfaces and a hole across the
    # boundary: at equal sweep counts SOR must be nearer the exact solve of the same equations.
    gen = torch.Generator().manual_seed(3)
    y, x = torch.meshgrid(torch.arange(24.0), torch.arange(32.0), indexing='ij')
    left = x < 14 + 0.3 * y
    depth = torch.where(left, 1.0 + 0.02 * y, 2.5 - 0.01 * x)[None, None]
    gray = torch.where(left, 0.3, 0.7)[None, None] + 0.02 * torch.rand(1, 1, 24, 32,
                                                                       generator=gen)
    mask = torch.ones_like(depth)
    mask[..., 4:20, 6:28] = 0
    exact = _exact_colorization(depth, mask, gray)
    hole = mask == 0
    errors = {}
    for solver in ('sor', 'jacobi'):
        filled = guided_multigrid_fill(depth * mask, mask, gray, 20, solver=solver)
        assert torch.equal(filled[~hole], depth[~hole])
        errors[solver] = (filled - exact)[hole].abs().mean().item()
    assert errors['sor'] < 0.5 * errors['jacobi']
    converged = guided_multigrid_fill(depth * mask, mask, gray, 200, solver='sor')
    assert (converged - exact)[hole].abs().max() < 1e-3
    with pytest.raises(ValueError, match="solver must be one of .*got 'cg'"):
        guided_multigrid_fill(depth * mask, mask, gray, 5, solver='cg')


@pytest.mark.parametrize('solver', ['sor', 'jacobi'])
def test_whole_image_sweeps_give_the_hole_sweeps_result(solver):
    # Two images of odd size with a large hole (coarse levels sweep too), scattered holes and
    # an image border inside the hole: the graph-capturable sweeps must solve the same
    # equations in the same order.
    gen = torch.Generator().manual_seed(5)
    depth = 1.0 + 2.0 * torch.rand(2, 1, 37, 53, generator=gen)
    mask = (torch.rand(2, 1, 37, 53, generator=gen) > 0.2).float()
    mask[0, :, 5:30, 0:40] = 0
    mask[1, :, 20:, 30:] = 0
    guide = torch.rand(2, 3, 37, 53, generator=gen)
    holes = guided_multigrid_fill(depth * mask, mask, guide, 20, solver=solver)
    whole = guided_multigrid_fill(depth * mask, mask, guide, 20, solver=solver,
                                  whole_image=True)
    torch.testing.assert_close(whole, holes, atol=1e-5, rtol=1e-5)
    assert torch.equal(whole[mask > 0], depth[mask > 0])


class _HostRoundTrips(TorchDispatchMode):
    """Record the operators that read device data on the host or send host data to a device."""

    HOST_READS = ('aten._local_scalar_dense', 'aten.nonzero', 'aten.masked_select',
                  'aten.unique', 'aten.lift_fresh')

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        bool_index = name.startswith('aten.index') and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for a in args if isinstance(a, (list, tuple)) for i in a)
        if name.startswith(self.HOST_READS) or bool_index:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def test_sync_free_forward_never_waits_for_the_device_nor_copies_from_the_host():
    # What CUDA graph capture forbids, checked on the CPU: after a first call (which fills the
    # model's caches) a sync-free forward pass reads nothing back and uploads nothing.
    model = build_s2ml('tiny').eval()
    rgb = torch.rand(1, 3, 40, 56)
    depth = 1.0 + 3.0 * torch.rand(1, 1, 40, 56)
    depth[..., 5:35, 3:40] = 0
    with torch.inference_mode():
        model(rgb, depth)
        default, sync_free = _HostRoundTrips(), _HostRoundTrips()
        with default:
            model(rgb, depth)
        model.sync_free = True
        model(rgb, depth)
        with sync_free:
            model(rgb, depth)
    assert 'aten.nonzero.default' in default.seen  # the hole-only sweeps do wait
    assert sync_free.seen == []


def test_sync_free_forward_matches_the_default_forward():
    torch.manual_seed(0)
    model = build_s2ml('tiny').eval()
    rgb = torch.rand(1, 3, 50, 70)
    depth = 1.0 + 3.0 * torch.rand(1, 1, 50, 70)
    depth[..., 10:40, 5:50] = 0
    with torch.no_grad():
        default = model(rgb, depth)
        model.sync_free = True
        sync_free = model(rgb, depth)
    for a, b in zip(sync_free, default):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('height,width,window', [(16, 24, 8), (8, 8, 4), (12, 36, 4)])
def test_window_partition_round_trip(height, width, window):
    x = torch.randn(2, height, width, 5)
    windows = window_partition(x, window)
    assert windows.shape == (2, (height // window) * (width // window), window * window, 5)
    # The first window holds the top-left w x w patch, row-major.
    torch.testing.assert_close(windows[0, 0].view(window, window, 5), x[0, :window, :window])
    torch.testing.assert_close(window_reverse(windows, window, height, width), x)


def test_shifted_window_mask_separates_wrapped_regions():
    mask = shifted_window_mask(16, 16, 8, 4, torch.device('cpu'))
    assert mask.shape == (4, 64, 64)
    assert (mask[0] == 0).all()  # the top-left window contains no wrapped pixels
    assert (mask[3] < 0).any()  # the bottom-right one mixes four regions
    assert torch.equal(mask, mask.transpose(1, 2))


def test_shifted_windows_do_not_mix_pixels_that_only_meet_by_wrapping():
    # 8x8 map, window 4, shift 2: after the cyclic roll, pixel (0, 0) and pixel (7, 7) share
    # the bottom-right window but come from opposite corners, so the mask must keep them apart,
    # while (0, 0) and (0, 1) are true neighbours and must interact.
    torch.manual_seed(0)
    block = SwinBlock(8, 2, 4, shifted=True, mlp_ratio=2.0)
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 0, 0] += 5.0  # one channel: a uniform shift would vanish in the LayerNorm
    with torch.no_grad():
        out_x, out_y = block(x), block(y)
    assert torch.allclose(out_x[0, 7, 7], out_y[0, 7, 7], atol=1e-6)
    assert not torch.allclose(out_x[0, 0, 1], out_y[0, 0, 1])
    unmasked = SwinBlock(8, 2, 4, shifted=True, mlp_ratio=2.0)
    unmasked.load_state_dict(block.state_dict())
    unmasked._mask = lambda h, w, device: torch.zeros(4, 16, 16)  # roll without the mask
    with torch.no_grad():
        leaked = unmasked(y)[0, 7, 7] - unmasked(x)[0, 7, 7]
    assert leaked.abs().max() > 1e-4  # so the first assertion is really the mask's doing


def test_spectral_fusion_identity_at_init_reproduces_features():
    torch.manual_seed(0)
    fusion = SpectralFusion(6)
    for conv in (fusion.depth_proj, fusion.out_proj, fusion.rgb_proj):
        torch.nn.init.zeros_(conv.bias)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(6).view(6, 6, 1, 1))
    depth_feat = torch.randn(2, 6, 13, 19)  # odd sizes: rfft2/irfft2 with explicit s
    rgb_feat = torch.randn(2, 6, 13, 19)
    out = fusion(rgb_feat, depth_feat)
    torch.testing.assert_close(out, depth_feat, atol=1e-5, rtol=1e-5)


def test_spectral_fusion_uses_rgb_once_trained():
    torch.manual_seed(0)
    fusion = SpectralFusion(4)
    torch.nn.init.normal_(fusion.amp_fuse[-1].weight, std=0.5)
    torch.nn.init.normal_(fusion.pha_fuse[-1].weight, std=0.5)
    depth_feat = torch.randn(1, 4, 16, 16)
    a = fusion(torch.randn(1, 4, 16, 16), depth_feat)
    b = fusion(torch.randn(1, 4, 16, 16), depth_feat)
    assert not torch.allclose(a, b)


def test_spectral_fusion_runs_fft_in_float32_under_autocast():
    fusion = SpectralFusion(4)
    x = torch.randn(1, 4, 15, 21)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        out = fusion(x.bfloat16(), x.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()


def test_model_under_autocast_keeps_output_shapes():
    model = build_s2ml('test')
    rgb, depth = _inputs(21, 30, batch=1)
    with torch.inference_mode(), torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        stages = model(rgb, depth)
    assert stages[-1].shape == (1, 1, 21, 30)
    assert torch.isfinite(stages[-1].float()).all()


def _capped_pair(**caps):
    torch.manual_seed(3)
    model = build_s2ml(replace(get_config('test'), fill_iterations=4)).eval()
    capped = S2ML(replace(model.config, **caps)).eval()
    capped.load_state_dict(model.state_dict())
    # Heads start near zero; perturb them so the network's change to D_0 is not negligible.
    with torch.no_grad():
        for a, b in zip(model.parameters(), capped.parameters()):
            noise = 0.05 * torch.randn_like(a)
            a.add_(noise)
            b.add_(noise)
    return model, capped


def test_depth_scale_cap_runs_a_deep_frame_at_the_cap_and_scales_the_output_back():
    model, capped = _capped_pair(depth_scale_cap_m=2.0)
    rgb, depth = _inputs(40, 56, batch=1)
    depth = torch.where(depth > 0, depth + 4.0, depth)  # measured depths 4.5-8.5 m
    valid = depth[depth > 0]
    scale = float(torch.quantile(valid, 0.9)) / 2.0
    with torch.inference_mode():
        out = capped(rgb, depth)[-1]
        expected = model(rgb, depth / scale)[-1] * scale
        uncapped = model(rgb, depth)[-1]
    assert scale > 3.0
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(out, uncapped, atol=1e-3)


def test_depth_scale_cap_leaves_close_frames_and_empty_frames_as_measured():
    model, capped = _capped_pair(depth_scale_cap_m=5.0)
    rgb, depth = _inputs(40, 56, batch=3)  # measured depths 0.5-4.5 m: p90 under 5 m
    depth[2] = 0.0  # nothing measured: no scale to take
    deep = depth[1:2].clone()
    deep[deep > 0] += 6.0
    depth[1:2] = deep  # one deep frame in the batch is scaled alone
    with torch.inference_mode():
        out = capped(rgb, depth)[-1]
        plain = model(rgb, depth)[-1]
    assert torch.equal(out[0], plain[0]) and torch.equal(out[2], plain[2])
    assert torch.isfinite(out).all() and not torch.allclose(out[1], plain[1], atol=1e-3)


def test_far_change_cap_bounds_every_stage_by_the_initial_fill_and_nothing_else():
    share = 0.02
    model, capped = _capped_pair(far_change_cap=share)
    cfg = model.config
    rgb, depth = _inputs(40, 56, batch=2)  # sides a multiple of 8: the model pads nothing
    valid = depth > 0
    with torch.inference_mode():
        plain = model(rgb, depth)
        out = capped(rgb, depth)
        # D_0 as the model computes it, in its depth unit (d_max meters).
        d0 = initial_fill(depth / cfg.max_depth_m, valid.float(), rgb, cfg.initial_fill,
                          cfg.fill_iterations, cfg.fill_solver, cfg.fill_guide)
    limit = d0 * (1.0 + share) * cfg.max_depth_m
    for stage_plain, stage_out in zip(plain, out):
        farther = stage_plain > limit + 1e-4
        # The perturbed network places pixels on both sides of the cap.
        assert farther.any() and (~farther).any()
        assert torch.allclose(stage_out, torch.minimum(stage_plain, limit), atol=1e-5)
        assert torch.equal(stage_out[~farther], stage_plain[~farther])


def test_hole_region_share_measures_each_8_connected_region_of_missing_pixels():
    valid = np.ones((10, 20), bool)
    valid[0:4, 0:5] = False  # 20 pixels
    valid[4, 5] = False  # touches the block at a corner only: the same region
    valid[8, 15:17] = False
    share = hole_region_share(valid)
    assert share[0, 0] == share[4, 5] == pytest.approx(21 / 200)
    assert share[8, 16] == pytest.approx(2 / 200)
    assert share.dtype == np.float32 and not share[valid].any()
    with pytest.raises(ValueError, match=r'valid must be a \[H, W\] mask, got shape \(1, 2, 3\)'):
        hole_region_share(np.ones((1, 2, 3), bool))


def test_large_hole_change_fades_the_change_in_large_hole_regions_only():
    model, faded = _capped_pair(large_hole_change=0.25, large_hole_start=0.1,
                                large_hole_end=0.3)
    gen = torch.Generator().manual_seed(5)
    rgb = torch.rand(2, 3, 40, 56, generator=gen)
    depth = 0.5 + 4.0 * torch.rand(2, 1, 40, 56, generator=gen)
    depth[0, :, :20] = 0.0  # half the frame: past the fade's end, 0.25 of the change kept
    depth[0, :, 30:32, 10:14] = 0.0  # 8 pixels: below its start, all kept
    depth[1, :, :8] = 0.0  # a fifth of the frame: half way, 1 - 0.75 / 2 kept
    expected_gate = torch.ones_like(depth)
    expected_gate[0, :, :20] = 0.25
    expected_gate[1, :, :8] = 0.625
    with torch.inference_mode():
        plain = model(rgb, depth, with_initial=True)
        out = faded(rgb, depth, with_initial=True)
        labelled_outside = faded(rgb, depth, hole_share=torch.from_numpy(np.stack(
            [hole_region_share(d[0].numpy() > 0)[None] for d in depth])))
    d0 = plain[0]
    torch.testing.assert_close(out[0], d0)
    for stage_plain, stage_out, stage_given in zip(plain[1:], out[1:], labelled_outside):
        assert (stage_plain - d0)[expected_gate < 1].abs().min() > 0  # the network moves them
        # Outputs are clamped at 0 after the fade: compare where the network stayed above 0.
        positive = stage_plain > 0
        torch.testing.assert_close(stage_out[positive],
                                   (d0 + expected_gate * (stage_plain - d0))[positive],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stage_given, stage_out)
    faded.sync_free = True  # as under CUDA graph capture: no labelling on the host
    with pytest.raises(ValueError, match='needs hole_share passed in'):
        faded(rgb, depth)
    with pytest.raises(ValueError, match=r'hole_share must match depth \(2, 1, 40, 56\)'):
        faded(rgb, depth, hole_share=torch.zeros(2, 1, 40, 55))


def test_guide_colour_steers_the_initial_fill_and_the_network_sees_its_own_colour():
    _, model = _guided_test_model()
    rgb, depth = _inputs(20, 30, batch=2)  # 20x30 is padded: the guide is padded too
    flat = model.rgb_mean.expand_as(rgb)
    with torch.no_grad():
        plain = model(rgb, depth)
        same_guide = model(rgb, depth, guide_rgb=rgb)
        withheld = model(flat, depth, guide_rgb=rgb)
        flat_guide = model(flat, depth)
    for a, b in zip(plain, same_guide):
        assert torch.equal(a, b)
    # Withholding the network's colour changes its output, not D_0: with the heads zeroed
    # the output is D_0, which follows the guide whatever colour the network sees.
    assert not torch.allclose(withheld[-1], plain[-1])
    _zero_heads(model)
    with torch.no_grad():
        d0_true = model(rgb, depth)[-1]
        d0_withheld = model(flat, depth, guide_rgb=rgb)[-1]
        d0_flat = model(flat, depth)[-1]
    torch.testing.assert_close(d0_withheld, d0_true)
    assert not torch.allclose(d0_flat, d0_true)
    assert not torch.allclose(flat_guide[-1], withheld[-1])
    with pytest.raises(ValueError, match=r'guide_rgb must match rgb \(2, 3, 20, 30\)'):
        model(rgb, depth, guide_rgb=rgb[:1])


def test_with_initial_puts_the_initial_fill_before_the_stage_outputs():
    _, model = _guided_test_model()
    rgb, depth = _inputs(20, 30, batch=2)
    with torch.no_grad():
        plain = model(rgb, depth)
        with_d0 = model(rgb, depth, with_initial=True)
    assert len(with_d0) == len(plain) + 1
    for a, b in zip(plain, with_d0[1:]):
        assert torch.equal(a, b)
    measured = depth > 0
    torch.testing.assert_close(with_d0[0][measured], depth[measured])
    # D_0 is what the cascade starts from: with the heads zeroed every stage emits it.
    _zero_heads(model)
    with torch.no_grad():
        torch.testing.assert_close(model(rgb, depth)[-1], with_d0[0])


def test_forward_rejects_mismatched_inputs():
    model = build_s2ml('test')
    with pytest.raises(ValueError, match='depth must be'):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 15))
    with pytest.raises(ValueError, match='rgb must be'):
        model(torch.rand(1, 4, 16, 16), torch.rand(1, 1, 16, 16))


def test_config_validation_names_the_bad_value():
    with pytest.raises(ConfigError, match='embed_dim'):
        S2MLConfig(embed_dim=7)
    with pytest.raises(ConfigError, match='max_depth_m'):
        S2MLConfig(max_depth_m=0.0)
    with pytest.raises(ConfigError, match="unknown S2ML variant 'huge'"):
        get_config('huge')
    with pytest.raises(ConfigError, match='initial_fill must be one of'):
        S2MLConfig(initial_fill='median')
    with pytest.raises(ConfigError, match='fill_iterations must be an integer >= 1, got 0'):
        S2MLConfig(fill_iterations=0)
    with pytest.raises(ConfigError, match="fill_solver must be one of .*got 'newton'"):
        S2MLConfig(fill_solver='newton')
    with pytest.raises(ConfigError, match="fill_guide must be one of .*got 'hsv'"):
        S2MLConfig(fill_guide='hsv')
    for bad in (-1.0, float('inf'), float('nan'), True, '2'):
        with pytest.raises(ConfigError, match=f'depth_scale_cap_m must be .*got {bad!r}'):
            S2MLConfig(depth_scale_cap_m=bad)
        with pytest.raises(ConfigError, match=f'far_change_cap must be .*got {bad!r}'):
            S2MLConfig(far_change_cap=bad)
        with pytest.raises(ConfigError, match=f'large_hole_change must be .*got {bad!r}'):
            S2MLConfig(large_hole_change=bad)
    with pytest.raises(ConfigError, match=r'large_hole_change must be a share in \[0, 1\]'):
        S2MLConfig(large_hole_change=1.5)
    for bad in (0.0, 1.2, float('nan'), None):
        with pytest.raises(ConfigError, match=f'large_hole_start must be .*got {bad!r}'):
            S2MLConfig(large_hole_start=bad)
    with pytest.raises(ConfigError, match=r'large_hole_end must be .*\[large_hole_start = 0.3, '
                                          r'1\], got 0.2'):
        S2MLConfig(large_hole_start=0.3, large_hole_end=0.2)
    with pytest.raises(ConfigError, match='unknown config fields'):
        S2MLConfig.from_dict({'embed_dim': 8, 'colour': 'red'})


def test_tiny_keeps_every_component():
    config = get_config('tiny')
    model = S2ML(config)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {'SpectralFusion', 'SpatialFusion', 'SwinConvBlock', 'WindowAttention'} <= kinds
    assert config.num_pairs >= 2  # a cascade, not a single stage
    shifted = [m.shift > 0 for m in model.modules() if isinstance(m, SwinBlock)]
    assert any(shifted) and not all(shifted)
    assert config.num_heads >= 1
