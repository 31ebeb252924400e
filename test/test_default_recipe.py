"""The one command that reproduces the default weights: stages chained, resumable, recorded."""

import json
from pathlib import Path

import pytest
from s2ml_ros.model import load_checkpoint, read_checkpoint
import torch
from training import default_recipe

# Every stage, shrunk to two steps on a few small frames.
SHORT = ['--train-samples', '4', '--val-samples', '2', '--sim-size', '64', '48', '--crop', '64',
         '48', '--batch-size', '2', '--epochs', '1', '--warmup-epochs', '0', '--workers', '0']


def test_the_shipped_stages_chain_from_scratch() -> None:
    stages = default_recipe.plan(default_recipe.DEFAULT_STAGES)
    assert stages[0].args.init_from is None and stages[-1].args.variant == 'tiny'
    assert [s.args.seed for s in stages] == [0, 1, 2, 3, 4, 5, 12, 13, 29, 31]
    # Each stage names the fill it was trained on, so a later default cannot change it.
    assert [(s.args.fill_solver, s.args.fill_guide) for s in stages[3:]] == [
        ('jacobi', 'gray')] * 3 + [('sor', 'rgb')] + [('sor', 'chroma')] * 3
    # The last two stages withhold the colour from the network in half and in 4/5 of the frames.
    assert [s.args.colour_dropout for s in stages] == [0.0] * 8 + [0.5, 0.8]
    assert [Path(s.argv[1]).stem for s in stages] == list(default_recipe.DEFAULT_STAGES)


def test_a_broken_chain_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(default_recipe.RecipeError, match='sim_tiny_stage3 starts from'):
        default_recipe.plan(('sim_tiny', 'sim_tiny_stage3'), tmp_path)
    with pytest.raises(default_recipe.RecipeError, match='trains from scratch'):
        default_recipe.plan(('sim_tiny_finetune',), tmp_path)
    with pytest.raises(default_recipe.RecipeError, match='does not exist'):
        default_recipe.plan(('sim_tiny', 'no_such_stage'), tmp_path)
    assert not (tmp_path / 'sim_tiny').exists()


@pytest.mark.slow
def test_one_command_trains_every_stage_then_copies_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # run from the repository root
    runs, out = tmp_path / 'runs', tmp_path / 'default.safetensors'
    default_recipe.main(['--out', str(out), '--runs-dir', str(runs), *SHORT])

    record = json.loads((runs / 'recipe.json').read_text())
    assert [s['config'] for s in record['stages']] == [
        f'training/configs/{name}.yaml' for name in default_recipe.DEFAULT_STAGES]
    # Each stage started from the best checkpoint of the one before.
    for before, stage in zip(record['stages'], record['stages'][1:]):
        _, info = read_checkpoint(stage['best'])
        assert info.provenance['init_from_sha256'] == before['best_sha256']
        assert info.provenance['command'].startswith('python -m training.train -c ')
    assert all('seconds' in s for s in record['stages'])  # every stage trained this time
    # Recorded commands name the configs as in the repository, so they rerun on any checkout.
    assert record['stages'][0]['command'].startswith(
        'python -m training.train -c training/configs/sim_tiny.yaml ')

    model, info = load_checkpoint(out)
    last, last_info = load_checkpoint(record['stages'][-1]['best'])
    # The last stage trained on the fill the shipped weights run: it is copied as it is.
    assert info.config == last_info.config
    assert (info.config.fill_solver, info.config.fill_guide) == ('sor', 'chroma')
    assert info.provenance['init_from_sha256'] == record['stages'][-2]['best_sha256']
    assert info.provenance['recipe']['stages'][0]['seed'] == 0
    assert record['out_sha256'] == info.sha256
    for key, value in last.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    # Run again (as after an interruption): finished stages are kept, not retrained.
    mtimes = [Path(s['best']).stat().st_mtime_ns for s in record['stages']]
    again = default_recipe.main(['--out', str(out), '--runs-dir', str(runs), *SHORT])
    assert [Path(s['best']).stat().st_mtime_ns for s in again['stages']] == mtimes
    assert [s['seconds'] for s in again['stages']] == [s['seconds'] for s in record['stages']]
    # A folder holding a run of other settings is not taken for a finished stage.
    with pytest.raises(SystemExit, match='other settings .*seed'):
        default_recipe.main(['--out', str(out), '--runs-dir', str(runs), *SHORT, '--seed', '7'])
