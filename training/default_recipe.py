"""
Retrain the shipped default weights with one command: thirteen training stages, then an average.

Each stage is an experiment config in ``training/configs/`` that starts from the best checkpoint
of an earlier stage (the one before, except where two stages branch from one start); the shipped
``s2ml_ros/weights/s2ml_tiny.safetensors`` is the element-wise mean of the weights of the last
two stages' best checkpoints (:data:`DEFAULT_AVERAGE`, both trained from stage 40 on the initial
fill the shipped file runs), set to run with the parameter-free :data:`DEFAULT_SETTINGS` and
written to ``--out`` with the record of every stage in its provenance. About 7.5 hours of
epochs on a 2-core CPU (7 h 21 min as run), plus validation and, on a first run, the frame
cache's rendering (about 7 minutes for stages 1-31's rooms, 11.5-19 for each 15,000 new rooms
of stages 40 and 44); with the current code, stages 4-6 come out close
to the shipped ones but not bit for bit (docs/training_log.md). From the repository root::

    python -m training.default_recipe --out runs/s2ml_tiny.safetensors

A stage whose run has finished is skipped and a stage cut short resumes, so the command can
simply be run again after an interruption. ``recipe.json`` in the runs folder, and the final
checkpoint's provenance, record every stage's command, seed, duration and best checkpoint
(SHA-256). Other arguments are passed to every stage (e.g. ``--workers 4``). One process only:
the stages' batch sizes and learning rates are those of one process.
"""

import argparse
import json
import os
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from s2ml_ros.model import load_checkpoint, save_checkpoint
from s2ml_ros.model.checkpoint import file_sha256
import torch
from training import train
from training.change_fill import check_settings, with_settings

CONFIG_DIR = Path(__file__).resolve().parent / 'configs'
# The shipped default, in order; each stage's init_from is an earlier stage's best checkpoint.
DEFAULT_STAGES = ('sim_tiny', 'sim_tiny_finetune', 'sim_tiny_stage3', 'sim_tiny_stage4',
                  'sim_tiny_stage5', 'sim_tiny_stage6', 'sim_tiny_stage12', 'sim_tiny_stage13',
                  'sim_tiny_stage29', 'sim_tiny_stage31', 'sim_tiny_stage40', 'sim_tiny_stage44',
                  'sim_tiny_stage45')
# The shipped weights are the mean of these stages' best weights: two runs from stage 40's
# checkpoint that trade the simulated and the real-frame scores the opposite ways, and their
# mean beats the stage 31 weights on both (docs/training_log.md, stages 44 and 45).
DEFAULT_AVERAGE = ('sim_tiny_stage44', 'sim_tiny_stage45')
# Parameter-free settings the shipped file runs with (no weights depend on them): the network's
# change to D_0 faded to a quarter in hole regions covering 10-30% of the frame or more, where
# on real frames it cost more than it gained (docs/training_log.md, "The change in large hole
# regions").
DEFAULT_SETTINGS = {'large_hole_change': 0.25, 'large_hole_start': 0.1, 'large_hole_end': 0.3}
# Config keys holding paths under runs/, moved with --runs-dir.
_RUN_PATH_KEYS = ('output_dir', 'init_from', 'sim_cache')
# Settings that do not change what a stage learns, so a run may be continued with others.
_FREE_KEYS = ('resume', 'no_progress', 'workers', 'device', 'config', 'eval_every')


class RecipeError(ValueError):
    """Raised when the stages do not chain (a stage does not start where an earlier one ended)."""


class Stage(NamedTuple):
    """One stage of the recipe: its config name, its training command and what that parses to."""

    name: str
    argv: List[str]
    args: argparse.Namespace


def _write_json(path: Path, value: Dict[str, Any]) -> None:
    tmp = path.with_name(path.name + '.partial')
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def stage_argv(config: Path, runs_dir: Optional[Path], extra: Sequence[str]) -> List[str]:
    """
    Command-line arguments of :func:`training.train.main` for one stage.

    :param config: The stage's YAML file.
    :param runs_dir: Folder replacing the config's ``runs/`` prefix (None: keep ``runs/``).
    :param extra: Arguments appended to every stage (they override the file).
    """
    # Relative to the working directory (the repository root) when inside it, so the recorded
    # commands rerun on another checkout.
    shown = os.path.relpath(config)
    argv = ['-c', str(config) if shown.startswith('..') else shown, '--no-progress',
            '--resume', 'auto']
    if runs_dir is not None:
        cfg = train.parse_args(['-c', str(config)])
        for key in _RUN_PATH_KEYS:
            value = getattr(cfg, key)
            if isinstance(value, str) and value.startswith('runs/'):
                argv += ['--' + key.replace('_', '-'), str(runs_dir / value[len('runs/'):])]
    return argv + list(extra)


def plan(stages: Sequence[str], runs_dir: Optional[Path] = None,
         extra: Sequence[str] = (), average: Sequence[str] = ()) -> List[Stage]:
    """
    Parse every stage's arguments and check that the stages chain.

    :param average: Stages whose best weights are averaged into the result (empty: the last
        stage's best checkpoint is the result).
    :return: The stages, in order.
    :raises RecipeError: If a stage is missing, does not start from an earlier stage's best
        checkpoint, or an averaged stage is not one of the stages.
    """
    parsed: List[Stage] = []
    for i, name in enumerate(stages):
        config = CONFIG_DIR / f'{name}.yaml'
        if not config.is_file():
            raise RecipeError(f'stage {name}: {config} does not exist')
        argv = stage_argv(config, runs_dir, extra)
        args = train.parse_args(argv)
        if i > 0:
            earlier = [Path(s.args.output_dir) / 'best.safetensors' for s in parsed]
            if args.init_from is None or Path(args.init_from) not in earlier:
                raise RecipeError(f'stage {name} starts from {args.init_from}, not from an '
                                  f"earlier stage's best checkpoint (the stage before: "
                                  f'{earlier[-1]})')
        elif args.init_from:
            raise RecipeError(f'first stage {name} starts from {args.init_from}; the recipe '
                              'trains from scratch')
        parsed.append(Stage(name, argv, args))
    if average and (len(set(average)) < 2 or len(set(average)) != len(average)
                    or not set(average) <= set(stages)):
        raise RecipeError(f'averaged stages {list(average)} must be two or more different '
                          f'stages of {list(stages)}')
    return parsed


def average_weights(paths: Sequence[Path]) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """
    Average checkpoints' weights element by element ("model soup").

    Meaningful for fine-tuned runs from one start, whose weights stay in one basin.

    :param paths: Checkpoints with one model config.
    :return: (the model, in eval mode, holding the mean of their floating-point tensors, integer
        buffers taken from the first; provenance naming every member's file, SHA-256 and own
        provenance).
    :raises RecipeError: Naming the first file whose config differs from the first's.
    """
    models, infos = zip(*(load_checkpoint(p) for p in paths))
    for path, info in zip(paths[1:], infos[1:]):
        if info.config != infos[0].config:
            raise RecipeError(f'{path} has another model config than {paths[0]}; only '
                              'checkpoints of one config can be averaged')
    states = [m.state_dict() for m in models]
    # Summed in float64 and rounded once, so the order of the members does not matter.
    mean = {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype)
            if v.is_floating_point() else v for k, v in states[0].items()}
    models[0].load_state_dict(mean)
    members = [{'file': str(path), 'sha256': info.sha256, 'provenance': info.provenance}
               for path, info in zip(paths, infos)]
    return models[0], {'average_of': members}


def _finished(args: argparse.Namespace) -> bool:
    """
    Tell whether the stage's run completed all its epochs and kept a best checkpoint.

    :raises RecipeError: If the run in the stage's folder was made with other settings.
    """
    out = Path(args.output_dir)
    state_path = out / 'last.train_state.pt'
    if not state_path.is_file():
        return False
    state = torch.load(state_path, map_location='cpu', weights_only=True)
    ran = state.get('args', {})
    differ = sorted(k for k, v in vars(args).items()
                    if k in ran and k not in _FREE_KEYS and ran[k] != v)
    if differ:
        raise RecipeError(f'{out} holds a run with other settings ({", ".join(differ)}); '
                          'delete it or give another --runs-dir')
    return state['next_epoch'] >= args.epochs and (out / 'best.safetensors').is_file()


def run(out: Path, stages: Sequence[str] = DEFAULT_STAGES, runs_dir: Optional[Path] = None,
        extra: Sequence[str] = (), average: Sequence[str] = DEFAULT_AVERAGE,
        settings: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """
    Train every stage not yet finished, then write the result to ``out``.

    :param out: Where the final checkpoint is written.
    :param stages: Config names in ``training/configs/``, in order.
    :param runs_dir: Folder for the stages' runs and frame cache (None: ``runs/`` as in the
        configs).
    :param extra: Arguments appended to every stage's command.
    :param average: Stages whose best weights are averaged into the result (empty: the last
        stage's best checkpoint, copied).
    :param settings: Parameter-free config fields
        (:data:`s2ml_ros.model.config.PARAMETER_FREE_FIELDS`) the result runs with instead of
        the stages' (None or empty: the stages').
    :return: The record also written to ``recipe.json``.
    :raises ConfigError: For a setting that is not parameter-free or not valid, before any
        training.
    """
    settings = dict(settings or {})
    check_settings(settings)  # fails now, not after hours of training
    parsed = plan(stages, runs_dir, extra, average)
    record_dir = Path(runs_dir) if runs_dir is not None else Path('runs')
    record_dir.mkdir(parents=True, exist_ok=True)
    record_path = record_dir / 'recipe.json'
    previous = {}
    if record_path.is_file():
        previous = {s['config']: s for s in json.loads(record_path.read_text())['stages']}
    record: Dict[str, Any] = {'stages': [], 'out': str(out)}
    for name, argv, args in parsed:
        config = f'training/configs/{name}.yaml'
        entry = previous.get(config, {})
        if _finished(args):
            print(f'{name}: finished earlier, kept {args.output_dir}/best.safetensors',
                  flush=True)
        else:
            print(f'{name}: training ({args.epochs} epochs, seed {args.seed})', flush=True)
            start = time.monotonic()
            train.main(argv)
            # A resumed stage adds to the time its earlier part took.
            entry = {'seconds': round(entry.get('seconds', 0) + time.monotonic() - start)}
        best = Path(args.output_dir) / 'best.safetensors'
        entry.update({'config': config, 'seed': args.seed, 'epochs': args.epochs,
                      'command': 'python -m training.train ' + ' '.join(argv),
                      'best': str(best), 'best_sha256': file_sha256(best)})
        record['stages'].append(entry)
        _write_json(record_path, record)
    if average:
        members = [e for e in record['stages'] if Path(e['config']).stem in average]
        record['average_of'] = [e['config'] for e in members]
        model, provenance = average_weights([Path(e['best']) for e in members])
        provenance['recipe'] = record
    else:
        model, info = load_checkpoint(Path(parsed[-1].args.output_dir) / 'best.safetensors')
        provenance = dict(info.provenance)
        provenance.pop('saved_at', None)
        provenance['recipe'] = record
    if settings:
        record['settings'] = settings
        model = with_settings(model, **settings)
    save_checkpoint(out, model, provenance)
    record['out_sha256'] = file_sha256(out)
    _write_json(record_path, record)
    hours = sum(s.get('seconds', 0) for s in record['stages']) / 3600
    print(f'wrote {out} ({hours:.2f} h of training recorded in {record_path})', flush=True)
    return record


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Command line entry point; exits with a message on a broken recipe."""
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--out', type=Path, default=Path('runs/s2ml_tiny.safetensors'),
                   help='final checkpoint (default: runs/s2ml_tiny.safetensors; copy it over '
                        's2ml_ros/weights/s2ml_tiny.safetensors to ship it)')
    p.add_argument('--runs-dir', type=Path, default=None,
                   help="folder for the stages' runs and frame cache (default: runs/)")
    args, extra = p.parse_known_args(argv)
    try:
        return run(args.out, DEFAULT_STAGES, args.runs_dir, extra, DEFAULT_AVERAGE,
                   DEFAULT_SETTINGS)
    except RecipeError as exc:
        raise SystemExit(f'error: {exc}') from exc


if __name__ == '__main__':
    main(sys.argv[1:])
