"""Tests of checkpoints (safetensors, self-describing) and of the numpy predictor."""

import json
import os
import stat

import numpy as np
import pytest
import s2ml_ros.model as model_pkg
from s2ml_ros.model import (build_s2ml, CheckpointError, load_checkpoint, read_checkpoint,
                            save_checkpoint)
from s2ml_ros.pipeline import (DefaultWeightsMissingError, DepthCompletionPredictor,
                               PredictorInputError, resolve_device)
import s2ml_ros.pipeline.predictor as predictor_mod
from safetensors import safe_open
from safetensors.torch import save_file
import torch


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(3)
    model = build_s2ml('test')
    path = save_checkpoint(tmp_path / 'model.safetensors', model,
                           {'dataset': 'unit-test', 'seed': 3})
    return path, model


def _frame(height=45, width=62, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 4.0, (height, width)).astype(np.float32)
    depth[10:25, 5:30] = 0.0
    depth[0, :] = np.nan
    return rgb, depth


def test_round_trip_gives_identical_outputs(tiny_checkpoint):
    path, model = tiny_checkpoint
    loaded, info = load_checkpoint(path)
    assert info.variant == 'test'
    assert info.config == model.config
    assert info.provenance['dataset'] == 'unit-test'
    assert len(info.sha256) == 64
    rgb = torch.rand(1, 3, 33, 47)
    depth = torch.rand(1, 1, 33, 47) * 3
    with torch.inference_mode():
        for a, b in zip(model.eval()(rgb, depth), loaded(rgb, depth)):
            assert torch.equal(a, b)


def test_checkpoint_carries_its_config_as_metadata(tiny_checkpoint):
    path, model = tiny_checkpoint
    with safe_open(str(path), framework='pt') as reader:
        metadata = reader.metadata()
    assert json.loads(metadata['config']) == model.config.to_dict()
    assert metadata['variant'] == 'test'


def test_checkpoint_is_readable_by_other_users_as_the_umask_allows(tmp_path):
    # The node often runs as another user than the one who trained the weights.
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / 'shared.safetensors', build_s2ml('test'))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_build_with_checkpoint_checks_the_variant(tiny_checkpoint):
    path, _ = tiny_checkpoint
    assert build_s2ml('test', checkpoint=path).config.variant == 'test'
    with pytest.raises(CheckpointError, match="holds variant 'test'"):
        build_s2ml('tiny', checkpoint=path)


def test_ddp_and_compile_prefixes_are_stripped(tmp_path):
    model = build_s2ml('test')

    class Wrapper(torch.nn.Module):

        def __init__(self, inner):
            super().__init__()
            self.module = inner

    path = save_checkpoint(tmp_path / 'wrapped.safetensors', Wrapper(model))
    tensors, _ = read_checkpoint(path)
    assert not any(k.startswith('module.') for k in tensors)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match='nope.safetensors does not exist'):
        load_checkpoint(tmp_path / 'nope.safetensors')


def test_truncated_file_is_reported(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    data = path.read_bytes()
    bad = tmp_path / 'truncated.safetensors'
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated.safetensors is not a readable'):
        load_checkpoint(bad)


def test_pickle_file_is_rejected_without_unpickling(tmp_path):
    bad = tmp_path / 'weights.pt'
    torch.save({'model': build_s2ml('test').state_dict()}, bad)
    with pytest.raises(CheckpointError, match='weights.pt is not a readable safetensors'):
        load_checkpoint(bad)


def test_foreign_safetensors_file_is_rejected(tmp_path):
    bad = tmp_path / 'foreign.safetensors'
    save_file({'w': torch.zeros(2)}, str(bad), metadata={'format': 'pt'})
    with pytest.raises(CheckpointError, match="has format 'pt'"):
        load_checkpoint(bad)


def test_mismatched_tensors_are_listed(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    with safe_open(str(path), framework='pt') as reader:
        metadata = reader.metadata()
        tensors = {k: reader.get_tensor(k) for k in reader.keys()}
    removed = sorted(tensors)[0]
    del tensors[removed]
    reshaped = sorted(tensors)[-1]
    tensors[reshaped] = torch.zeros(tuple(tensors[reshaped].shape) + (2,))
    bad = tmp_path / 'mismatch.safetensors'
    save_file(tensors, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(bad)
    message = str(excinfo.value)
    assert 'mismatch.safetensors' in message
    assert f'1 missing tensor(s): {removed}' in message
    assert 'wrong shape' in message and reshaped in message


def test_checkpoint_from_before_the_initial_fill_keeps_its_fill(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    with safe_open(str(path), framework='pt') as reader:
        metadata = dict(reader.metadata())
        tensors = {k: reader.get_tensor(k) for k in reader.keys()}
    config = json.loads(metadata['config'])
    assert config['initial_fill'] == 'guided_multigrid'  # today's default is recorded
    del config['initial_fill']
    del config['fill_iterations']
    del config['fill_solver']
    del config['fill_guide']
    metadata['config'] = json.dumps(config)
    old = tmp_path / 'old.safetensors'
    save_file(tensors, str(old), metadata=metadata)
    model, info = load_checkpoint(old)
    assert info.config.initial_fill == 'zeros' and model.config.initial_fill == 'zeros'
    # Weights from before the sweep count existed ran the guided fill with 5 sweeps.
    config['initial_fill'] = 'guided_multigrid'
    metadata['config'] = json.dumps(config)
    save_file(tensors, str(old), metadata=metadata)
    _, info = load_checkpoint(old)
    assert info.config.fill_iterations == 5
    # and with Jacobi sweeps, before the solver could be chosen, on grey affinities, before
    # the guide could be.
    assert info.config.fill_solver == 'jacobi' and info.config.fill_guide == 'gray'


def test_invalid_config_metadata_is_reported(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    with safe_open(str(path), framework='pt') as reader:
        metadata = dict(reader.metadata())
        tensors = {k: reader.get_tensor(k) for k in reader.keys()}
    metadata['config'] = json.dumps({'embed_dim': 7})
    bad = tmp_path / 'badconfig.safetensors'
    save_file(tensors, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match='badconfig.safetensors carries an invalid'):
        load_checkpoint(bad)


def test_predictor_fills_holes_and_can_keep_measured_pixels(tiny_checkpoint):
    path, _ = tiny_checkpoint
    predictor = DepthCompletionPredictor.from_checkpoint(path, device='cpu')
    rgb, depth = _frame()
    completed = predictor.predict(rgb, depth)
    assert completed.shape == depth.shape and completed.dtype == np.float32
    assert np.isfinite(completed).all() and (completed >= 0).all()
    measured = np.isfinite(depth) & (depth > 0)
    assert not np.array_equal(completed[measured], depth[measured])
    predictor.keep_measured = True
    kept = predictor.predict(rgb, depth)
    assert np.array_equal(kept[measured], depth[measured])
    np.testing.assert_array_equal(kept[~measured], completed[~measured])


def test_flip_average_is_the_mean_of_the_frame_and_its_mirror_image(tiny_checkpoint):
    path, _ = tiny_checkpoint
    plain = DepthCompletionPredictor.from_checkpoint(path, device='cpu')
    flipped = DepthCompletionPredictor.from_checkpoint(path, device='cpu', flip_average=True)
    rgb, depth = _frame(seed=3)
    mirror_rgb, mirror_depth = rgb[:, ::-1].copy(), depth[:, ::-1].copy()
    forward = plain.predict(rgb, depth)
    backward = plain.predict(mirror_rgb, mirror_depth)[:, ::-1]
    assert not np.allclose(forward, backward, atol=1e-4)  # the network is not symmetric
    averaged = flipped.predict(rgb, depth)
    np.testing.assert_allclose(averaged, 0.5 * (forward + backward), atol=1e-5)
    # Mirror-consistent: the mirrored frame gives the mirrored depth.
    np.testing.assert_allclose(flipped.predict(mirror_rgb, mirror_depth)[:, ::-1], averaged,
                               atol=1e-5)
    stages = flipped.predict_stages(rgb, depth)
    np.testing.assert_allclose(stages[-1], averaged, atol=1e-6)
    flipped.flip_average = False  # live-settable
    np.testing.assert_allclose(flipped.predict(rgb, depth), forward, atol=1e-6)


def test_predictor_fades_the_change_in_large_holes_as_the_model_does(tiny_checkpoint, tmp_path):
    from dataclasses import replace
    _, model = tiny_checkpoint
    faded = model_pkg.S2ML(replace(model.config, large_hole_change=0.0, large_hole_start=0.05,
                                   large_hole_end=0.05))
    faded.load_state_dict(model.state_dict())
    path = save_checkpoint(tmp_path / 'faded.safetensors', faded, {'seed': 3})
    # Sides a multiple of 8, so the model pads nothing and its D_0 is initial_fill's; the
    # 15x25 block is 12% of the frame, the NaN row 2%.
    rgb, depth = _frame(48, 64, seed=4)
    plain = DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cpu')
    predictor = DepthCompletionPredictor.from_checkpoint(path, device='cpu')
    d0 = predictor.initial_fill(rgb, depth)
    out, unfaded = predictor.predict(rgb, depth), plain.predict(rgb, depth)
    block = np.zeros(depth.shape, bool)
    block[10:25, 5:30] = True
    np.testing.assert_allclose(out[block], d0[block], atol=1e-5)  # a step: none of the change
    assert not np.allclose(unfaded[block], d0[block], atol=1e-3)
    measured = np.isfinite(depth) & (depth > 0)
    np.testing.assert_allclose(out[measured], unfaded[measured], atol=1e-5)
    # Mirror averaging passes the mirrored region shares along with the mirrored frame: the
    # block gets the mean of the two D_0 (they differ by the order of the fill's sweeps).
    mirror_d0 = predictor.initial_fill(rgb[:, ::-1].copy(), depth[:, ::-1].copy())[:, ::-1]
    predictor.flip_average = plain.flip_average = True
    both_d0 = 0.5 * (d0 + mirror_d0)
    np.testing.assert_allclose(predictor.predict(rgb, depth)[block], both_d0[block], atol=1e-5)
    assert not np.allclose(plain.predict(rgb, depth)[block], both_d0[block], atol=1e-3)


def test_predictor_matches_the_model(tiny_checkpoint):
    path, model = tiny_checkpoint
    predictor = DepthCompletionPredictor.from_checkpoint(path, device='cpu')
    rgb, depth = _frame(seed=1)
    stages = predictor.predict_stages(rgb, depth)
    rgb_t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    depth_t = torch.from_numpy(np.nan_to_num(depth))[None, None]
    with torch.inference_mode():
        expected = model.eval()(rgb_t, depth_t)
    assert len(stages) == len(expected)
    np.testing.assert_allclose(stages[-1], expected[-1][0, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize('rgb_shape,rgb_dtype,depth_shape,depth_dtype,match', [
    ((45, 62, 3), np.float32, (45, 62), np.float32, 'rgb must be a uint8'),
    ((45, 62), np.uint8, (45, 62), np.float32, 'rgb must be a uint8'),
    ((45, 62, 3), np.uint8, (45, 62), np.uint16, 'depth_m must be a float32'),
    ((45, 62, 3), np.uint8, (44, 62), np.float32, 'differ'),
])
def test_predictor_rejects_bad_inputs(tiny_checkpoint, rgb_shape, rgb_dtype, depth_shape,
                                      depth_dtype, match):
    predictor = DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cpu')
    with pytest.raises(PredictorInputError, match=match):
        predictor.predict(np.zeros(rgb_shape, rgb_dtype), np.zeros(depth_shape, depth_dtype))


def test_default_weights_missing_is_an_error_not_a_random_model(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor_mod, 'DEFAULT_CHECKPOINT', tmp_path / 'absent.safetensors')
    with pytest.raises(DefaultWeightsMissingError, match='absent.safetensors'):
        DepthCompletionPredictor.from_checkpoint(None)


def test_default_weights_load_when_shipped(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(predictor_mod, 'DEFAULT_CHECKPOINT', tiny_checkpoint[0])
    predictor = DepthCompletionPredictor.from_checkpoint(None, device='cpu')
    assert predictor.info.path == str(tiny_checkpoint[0])


def test_shipped_default_weights_are_valid_if_present():
    if not model_pkg.DEFAULT_CHECKPOINT.is_file():
        pytest.skip('no default weights shipped in this tree')
    _, info = read_checkpoint(model_pkg.DEFAULT_CHECKPOINT)
    assert info.variant == 'tiny'
    # One training run records its command; an average of runs records each member's.
    provenance = info.provenance
    runs = [m['provenance'] for m in provenance['average_of']] if 'average_of' in provenance \
        else [provenance]
    assert runs and all(r.get('command') for r in runs), \
        'default weights must record how they were trained'


def test_device_resolution():
    assert resolve_device('cpu').type == 'cpu'
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device('tpu0')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            resolve_device('cuda')


def test_reduced_precision_falls_back_to_fp32_on_cpu(tiny_checkpoint):
    predictor = DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cpu',
                                                         precision='fp16')
    assert predictor.precision == 'fp32'
    with pytest.raises(ValueError, match='unknown precision'):
        DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], precision='int8')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('precision', ['fp32', 'fp16', 'bf16'])
def test_cuda_predictor_matches_cpu(tiny_checkpoint, precision):
    rgb, depth = _frame(seed=2)
    cpu = DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cpu')
    gpu = DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cuda',
                                                   precision=precision)
    tolerance = 1e-3 if precision == 'fp32' else 5e-2
    np.testing.assert_allclose(gpu.predict(rgb, depth), cpu.predict(rgb, depth),
                               atol=tolerance, rtol=tolerance)


def test_cuda_graph_needs_cuda_and_excludes_compile(tiny_checkpoint):
    with pytest.raises(ValueError, match='cuda_graph needs a CUDA device, got cpu'):
        DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cpu',
                                                 cuda_graph=True)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match='cannot be combined'):
            DepthCompletionPredictor.from_checkpoint(tiny_checkpoint[0], device='cuda',
                                                     cuda_graph=True, compile_model=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('precision,large_hole_change',
                         [('fp32', 1.0), ('fp16', 1.0), ('fp32', 0.25)])
def test_cuda_graph_replays_match_eager_runs_for_every_frame(
        tiny_checkpoint, tmp_path, precision, large_hole_change):
    # New content every frame (a replay must not return the previous frame's depth), two frame
    # sizes, and flip averaging switched on between frames (a batch of two: another graph).
    # With the change faded in large holes the region shares are a graph input as well.
    from dataclasses import replace
    path, model = tiny_checkpoint
    if large_hole_change < 1.0:
        faded = model_pkg.S2ML(replace(model.config, large_hole_change=large_hole_change,
                                       large_hole_start=0.05, large_hole_end=0.2))
        faded.load_state_dict(model.state_dict())
        path = save_checkpoint(tmp_path / 'faded.safetensors', faded, {'seed': 3})
    graphed = DepthCompletionPredictor.from_checkpoint(path, device='cuda',
                                                       precision=precision, cuda_graph=True)
    eager = DepthCompletionPredictor.from_checkpoint(path, device='cuda',
                                                     precision=precision)
    assert graphed.cuda_graph and not eager.cuda_graph
    tolerance = 1e-4 if precision == 'fp32' else 2e-2
    previous = None
    for seed, size, flip in [(1, (45, 62), False), (2, (45, 62), False), (3, (30, 41), False),
                             (4, (45, 62), True), (5, (45, 62), False)]:
        rgb, depth = _frame(*size, seed=seed)
        graphed.flip_average = eager.flip_average = flip
        out = graphed.predict(rgb, depth)
        np.testing.assert_allclose(out, eager.predict(rgb, depth), atol=tolerance,
                                   rtol=tolerance)
        if previous is not None and previous.shape == out.shape:
            assert not np.array_equal(out, previous)
        previous = out
    assert graphed.cuda_graph
