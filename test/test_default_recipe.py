"""The one command that reproduces the default weights: stages chained, resumable, recorded."""

import dataclasses
import json
from pathlib import Path
import re

import pytest
from s2ml_ros.model import build_s2ml, load_checkpoint, read_checkpoint, save_checkpoint
import torch
from training import default_recipe

# Every stage, shrunk to two steps on a few small frames.
SHORT = ['--train-samples', '4', '--val-samples', '2', '--sim-size', '64', '48', '--crop', '64',
         '48', '--batch-size', '2', '--epochs', '1', '--warmup-epochs', '0', '--workers', '0']


def test_the_shipped_stages_chain_from_scratch() -> None:
    stages = default_recipe.plan(default_recipe.DEFAULT_STAGES,
                                 average=default_recipe.DEFAULT_AVERAGE)
    assert stages[0].args.init_from is None and stages[-1].args.variant == 'tiny'
    assert [s.args.seed for s in stages] == [0, 1, 2, 3, 4, 5, 12, 13, 29, 31, 36, 37, 37]
    # Each stage names the fill it was trained on, so a later default cannot change it.
    assert [(s.args.fill_solver, s.args.fill_guide) for s in stages[3:]] == [
        ('jacobi', 'gray')] * 3 + [('sor', 'rgb')] + [('sor', 'chroma')] * 6
    # Stages 29 and 31 withhold the colour from the network in half and in 4/5 of the frames.
    assert [s.args.colour_dropout for s in stages] == [0.0] * 8 + [0.5] + [0.8] * 4
    assert [Path(s.argv[1]).stem for s in stages] == list(default_recipe.DEFAULT_STAGES)
    # The averaged stages branch from stage 40's checkpoint.
    stage40 = Path(stages[-3].args.output_dir) / 'best.safetensors'
    assert [Path(s.args.init_from) for s in stages[-2:]] == [stage40, stage40]
    assert set(default_recipe.DEFAULT_AVERAGE) == {s.name for s in stages[-2:]}


def test_a_broken_chain_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(default_recipe.RecipeError, match='sim_tiny_stage3 starts from'):
        default_recipe.plan(('sim_tiny', 'sim_tiny_stage3'), tmp_path)
    with pytest.raises(default_recipe.RecipeError, match='trains from scratch'):
        default_recipe.plan(('sim_tiny_finetune',), tmp_path)
    with pytest.raises(default_recipe.RecipeError, match='does not exist'):
        default_recipe.plan(('sim_tiny', 'no_such_stage'), tmp_path)
    for average in (('sim_tiny', 'sim_tiny_stage3'), ('sim_tiny',),
                    ('sim_tiny_finetune', 'sim_tiny_finetune')):
        message = re.escape(f'averaged stages {list(average)} must be two or more different')
        with pytest.raises(default_recipe.RecipeError, match=message):
            default_recipe.plan(('sim_tiny', 'sim_tiny_finetune'), tmp_path, average=average)
    assert not (tmp_path / 'sim_tiny').exists()


def test_settings_that_need_training_or_are_invalid_are_refused_before_training(
        tmp_path: Path) -> None:
    from s2ml_ros.model import ConfigError
    out = tmp_path / 'x.safetensors'
    with pytest.raises(ConfigError, match=r"without retraining, got \['embed_dim'\]"):
        default_recipe.run(out, runs_dir=tmp_path, settings={'embed_dim': 16})
    with pytest.raises(ConfigError, match='large_hole_change must be a share in .*got 2'):
        default_recipe.run(out, runs_dir=tmp_path, settings={'large_hole_change': 2})
    assert not (tmp_path / 'recipe.json').exists()


def test_averaged_weights_are_the_element_wise_mean(tmp_path: Path) -> None:
    paths, states = [], []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        model = build_s2ml('test')
        paths.append(save_checkpoint(tmp_path / f'{seed}.safetensors', model, {'seed': seed}))
        states.append(model.state_dict())
    mean, provenance = default_recipe.average_weights(paths)
    for key, value in mean.state_dict().items():
        if value.is_floating_point():
            expected = (states[0][key] + states[1][key] + states[2][key]) / 3
            assert torch.allclose(value, expected, atol=1e-7), key
    assert [m['provenance']['seed'] for m in provenance['average_of']] == [0, 1, 2]
    assert [m['sha256'] for m in provenance['average_of']] == [
        read_checkpoint(p)[1].sha256 for p in paths]
    # Written and read back like any checkpoint, with its own config.
    out = save_checkpoint(tmp_path / 'mean.safetensors', mean, provenance)
    assert load_checkpoint(out)[1].config == load_checkpoint(paths[0])[1].config

    other = build_s2ml(dataclasses.replace(mean.config, num_pairs=mean.config.num_pairs + 1))
    odd = save_checkpoint(tmp_path / 'odd.safetensors', other)
    with pytest.raises(default_recipe.RecipeError, match='odd.safetensors has another model'):
        default_recipe.average_weights([paths[0], odd])


@pytest.mark.slow
def test_one_command_trains_every_stage_then_copies_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # run from the repository root
    runs, out = tmp_path / 'runs', tmp_path / 'default.safetensors'
    default_recipe.main(['--out', str(out), '--runs-dir', str(runs), *SHORT])

    record = json.loads((runs / 'recipe.json').read_text())
    assert [s['config'] for s in record['stages']] == [
        f'training/configs/{name}.yaml' for name in default_recipe.DEFAULT_STAGES]
    # Each stage started from the best checkpoint of an earlier one: the one before, except
    # that the two averaged stages both start from stage 40's.
    for i, stage in enumerate(record['stages'][1:], start=1):
        _, info = read_checkpoint(stage['best'])
        start = -3 if stage['config'].endswith('stage45.yaml') else i - 1
        assert info.provenance['init_from_sha256'] == record['stages'][start]['best_sha256']
        assert info.provenance['command'].startswith('python -m training.train -c ')
    assert all('seconds' in s for s in record['stages'])  # every stage trained this time
    # Recorded commands name the configs as in the repository, so they rerun on any checkout.
    assert record['stages'][0]['command'].startswith(
        'python -m training.train -c training/configs/sim_tiny.yaml ')

    # The result is the mean of the last two stages' weights, with their record.
    model, info = load_checkpoint(out)
    members = [load_checkpoint(s['best']) for s in record['stages'][-2:]]
    # It runs the stages' architecture and fill with the recipe's parameter-free settings.
    assert info.config == dataclasses.replace(members[0][1].config,
                                              **default_recipe.DEFAULT_SETTINGS)
    assert info.config.fades_large_holes and not members[0][1].config.fades_large_holes
    assert record['settings'] == default_recipe.DEFAULT_SETTINGS
    assert (info.config.fill_solver, info.config.fill_guide) == ('sor', 'chroma')
    assert [m['sha256'] for m in info.provenance['average_of']] == [
        s['best_sha256'] for s in record['stages'][-2:]]
    assert info.provenance['recipe']['stages'][0]['seed'] == 0
    assert record['average_of'] == [s['config'] for s in record['stages'][-2:]]
    assert record['out_sha256'] == info.sha256
    for key, value in model.state_dict().items():
        first, second = (m.state_dict()[key] for m, _ in members)
        expected = first
        if value.is_floating_point():
            expected = (first.double() + second.double()).div(2).to(value.dtype)
        assert torch.equal(value, expected), key

    # Run again (as after an interruption): finished stages are kept, not retrained.
    mtimes = [Path(s['best']).stat().st_mtime_ns for s in record['stages']]
    again = default_recipe.main(['--out', str(out), '--runs-dir', str(runs), *SHORT])
    assert [Path(s['best']).stat().st_mtime_ns for s in again['stages']] == mtimes
    assert [s['seconds'] for s in again['stages']] == [s['seconds'] for s in record['stages']]
    # A folder holding a run of other settings is not taken for a finished stage.
    with pytest.raises(SystemExit, match='other settings .*seed'):
        default_recipe.main(['--out', str(out), '--runs-dir', str(runs), *SHORT, '--seed', '7'])
