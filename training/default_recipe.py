"""
Retrain the shipped default weights with one command: ten training stages in turn.

Each stage is an experiment config in ``training/configs/`` that starts from the best checkpoint
of the one before; the last stage's best checkpoint, trained on the initial fill the shipped
``s2ml_ros/weights/s2ml_tiny.safetensors`` runs, is copied to ``--out`` with the record of every
stage in its provenance. About 6 hours of epochs on a 2-core CPU (5 h 47 min as run), plus
validation and, on a first run, about 7 minutes rendering the frame cache; with the current code,
stages 4-6 come out close to the shipped ones but not bit for bit (docs/training_log.md). From
the repository root::

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
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from s2ml_ros.model import load_checkpoint, save_checkpoint
from s2ml_ros.model.checkpoint import file_sha256
import torch
from training import train

CONFIG_DIR = Path(__file__).resolve().parent / 'configs'
# The shipped default, in order; each stage's init_from is the previous stage's best checkpoint.
DEFAULT_STAGES = ('sim_tiny', 'sim_tiny_finetune', 'sim_tiny_stage3', 'sim_tiny_stage4',
                  'sim_tiny_stage5', 'sim_tiny_stage6', 'sim_tiny_stage12', 'sim_tiny_stage13',
                  'sim_tiny_stage29', 'sim_tiny_stage31')
# Config keys holding paths under runs/, moved with --runs-dir.
_RUN_PATH_KEYS = ('output_dir', 'init_from', 'sim_cache')
# Settings that do not change what a stage learns, so a run may be continued with others.
_FREE_KEYS = ('resume', 'no_progress', 'workers', 'device', 'config', 'eval_every')


class RecipeError(ValueError):
    """Raised when the stages do not chain (a stage does not start where the previous ended)."""


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
         extra: Sequence[str] = ()) -> List[Stage]:
    """
    Parse every stage's arguments and check that the stages chain.

    :return: The stages, in order.
    :raises RecipeError: If a stage is missing or does not start from the previous stage's
        best checkpoint.
    """
    parsed: List[Stage] = []
    for i, name in enumerate(stages):
        config = CONFIG_DIR / f'{name}.yaml'
        if not config.is_file():
            raise RecipeError(f'stage {name}: {config} does not exist')
        argv = stage_argv(config, runs_dir, extra)
        args = train.parse_args(argv)
        if i > 0:
            expected = Path(parsed[-1].args.output_dir) / 'best.safetensors'
            if args.init_from is None or Path(args.init_from) != expected:
                raise RecipeError(f'stage {name} starts from {args.init_from}, not from the '
                                  f"previous stage's best checkpoint {expected}")
        elif args.init_from:
            raise RecipeError(f'first stage {name} starts from {args.init_from}; the recipe '
                              'trains from scratch')
        parsed.append(Stage(name, argv, args))
    return parsed


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
        extra: Sequence[str] = ()) -> Dict[str, Any]:
    """
    Train every stage not yet finished, then copy the last one's best checkpoint to ``out``.

    :param out: Where the final checkpoint is written.
    :param stages: Config names in ``training/configs/``, in order.
    :param runs_dir: Folder for the stages' runs and frame cache (None: ``runs/`` as in the
        configs).
    :param extra: Arguments appended to every stage's command.
    :return: The record also written to ``recipe.json``.
    """
    parsed = plan(stages, runs_dir, extra)
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
    model, info = load_checkpoint(Path(parsed[-1].args.output_dir) / 'best.safetensors')
    provenance = dict(info.provenance)
    provenance.pop('saved_at', None)
    provenance['recipe'] = record
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
        return run(args.out, DEFAULT_STAGES, args.runs_dir, extra)
    except RecipeError as exc:
        raise SystemExit(f'error: {exc}') from exc


if __name__ == '__main__':
    main(sys.argv[1:])
