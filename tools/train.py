#!/usr/bin/env python
"""Train a model from an mmpretrain-style config.

The command line follows mmpretrain's ``tools/train.py``. ``mmlt_hybrid`` is
imported here, so its components are registered (and the checkpoint loader
knows mmengine's classes) even when a config forgot ``custom_imports``.

Examples::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
    bash tools/dist_train.sh CONFIG 8 [ARGS]
"""
import argparse
import os.path as osp
import pickle
import zipfile
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config

import mmlt_hybrid  # noqa: F401  (registers components and safe globals)
from mmlt_hybrid.engine.hooks import GlobalRngStateHook
from mmlt_hybrid.utils import (
    add_common_args,
    add_data_hooks,
    build_runner,
    check_checkpoint,
    enable_amp,
    find_resume_checkpoint,
    make_checkpoints_atomic,
    parse_common,
    require_file,
    set_launcher_and_work_dir,
    shutdown_dist,
    tool_parser,
)
from mmlt_hybrid.utils.checkpoints import ResumeCheckHook


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The parsed command line (``argv``, default ``sys.argv[1:]``)."""
    parser = tool_parser('Train a model', 'logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume training: from CHECKPOINT if given, else (bare flag or '
        '"auto") from the latest checkpoint in the work dir (the one its '
        'last_checkpoint file names, also after the work dir was moved); '
        'with no checkpoint there, training starts from scratch')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: float16 with dynamic loss scaling on CUDA, '
        'bfloat16 autocast on the CPU')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate on the validation set during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate linearly with the total batch size '
        '(needs auto_scale_lr.base_batch_size in the config)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='set pin_memory=False in all dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='set persistent_workers=False in all dataloaders')
    add_common_args(parser, 'tools/dist_train.sh')
    return parse_common(parser, argv)


def add_rng_state_hook(runner) -> bool:
    """Register ``GlobalRngStateHook`` (the global generators' states saved
    in checkpoints and restored on resume) on a built runner unless its
    config has one; returns whether it was registered. On the runner, not
    in the config, so the config a run records is the one it was given."""
    if any(isinstance(hook, GlobalRngStateHook) for hook in runner.hooks):
        return False
    runner.register_hook(GlobalRngStateHook())
    return True


def _checkpoint_dir(cfg: Config) -> Optional[str]:
    """Where the run writes its checkpoints, when not the work dir: the
    checkpoint hook's ``out_dir`` joined with the work dir's name (as
    mmengine's CheckpointHook does)."""
    out_dir = ((cfg.get('default_hooks') or {}).get('checkpoint')
               or {}).get('out_dir')
    if not out_dir or osp.abspath(out_dir) == osp.abspath(cfg.work_dir):
        return None
    return osp.join(out_dir, osp.basename(osp.normpath(cfg.work_dir)))


def _checkpoint_seed(path: str) -> Optional[int]:
    """The seed in a checkpoint's ``meta``, or None; read weights-only
    (a zip-format file memory-mapped, so its tensors are not read)."""
    if '://' in str(path):
        return None
    try:
        checkpoint = torch.load(
            path,
            map_location='cpu',
            weights_only=True,
            mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        return None  # refused when the runner loads it, as any other way in
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    seed = meta.get('seed') if isinstance(meta, dict) else None
    return seed if isinstance(seed,
                              int) and not isinstance(seed, bool) else None


def keep_checkpoint_seed(cfg: Config) -> Optional[Tuple[str, bool]]:
    """Make a resumed run use the seed its checkpoint was trained with.

    The runner builds the sampler and the workers' seeds from
    ``randomness.seed`` before it loads the checkpoint; with ``seed=None``
    (mmpretrain's default) that is a fresh random seed, and mmengine
    switches to the checkpoint's ``meta['seed']`` only for the global
    generators, after the data loader was built. So the seed is set here,
    before the runner is built, from the checkpoint ``cfg.load_from``.

    Returns:
        tuple[str, bool] | None: What to log and whether as a warning (the
        config gave another seed), or None when nothing changed.
    """
    seed = _checkpoint_seed(cfg.load_from)
    randomness = dict(cfg.get('randomness') or {})
    current = randomness.get('seed')
    if seed is None or current == seed:
        return None
    cfg.randomness = dict(randomness, seed=seed)
    if current is None:
        return (f'Resume: randomness.seed is None; the run keeps the seed '
                f'it was trained with, {seed} (meta seed of '
                f'{cfg.load_from}).', False)
    return (f'Resume: randomness.seed={current!r} differs from the seed '
            f'{cfg.load_from} was trained with ({seed}); the resumed run '
            f'keeps {seed}, so it continues the run it resumes. To train '
            f'with seed {current!r}, start a run without --resume.', True)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to ``cfg`` (changed in place and returned)."""
    set_launcher_and_work_dir(cfg, args)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr')
        if not auto_scale_lr or 'base_batch_size' not in auto_scale_lr:
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) '
                f'in the config, got auto_scale_lr={auto_scale_lr!r}')
        cfg.auto_scale_lr.enable = True
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(field) is None:
            continue
        if args.no_pin_memory:
            cfg[field].pin_memory = False
        if args.no_persistent_workers:
            cfg[field].persistent_workers = False
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # After --cfg-options, so that options touching val_* still merge.
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        enable_amp(cfg)
    add_data_hooks(cfg)
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """Train as the command line says.

    A checkpoint to resume from or to load is checked before the runner is
    built (:func:`check_checkpoint`); a bare ``--resume`` (or ``resume=True``
    without ``load_from``) picks the work dir's latest checkpoint
    (:func:`find_resume_checkpoint`). A checkpoint resumed must fit the model
    and not be past the end of training (:class:`ResumeCheckHook`, checked
    before anything is loaded); the run keeps its checkpoint's seed
    (:func:`keep_checkpoint_seed`) and global generators' states
    (``GlobalRngStateHook``). Checkpoints are written atomically
    (:func:`make_checkpoints_atomic`).
    """
    args = parse_args(argv)
    require_file(args.config, 'config')
    if args.resume not in (None, 'auto'):
        check_checkpoint(args.resume, 'checkpoint (--resume)')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    notes = []
    if cfg.get('resume') and not cfg.get('load_from'):
        cfg.load_from, note = find_resume_checkpoint(cfg.work_dir,
                                                     _checkpoint_dir(cfg))
        cfg.resume = cfg.load_from is not None
        notes.append((note, note.warning))
    if cfg.get('load_from') and cfg.load_from != args.resume:
        what = '--resume' if args.resume else 'load_from'
        check_checkpoint(cfg.load_from, f'checkpoint ({what})')
    if cfg.get('resume') and cfg.get('load_from'):
        notes.append(keep_checkpoint_seed(cfg))

    runner = build_runner(cfg, args.launcher)
    add_rng_state_hook(runner)
    if cfg.get('resume') and cfg.get('load_from'):
        runner.register_hook(
            ResumeCheckHook(cfg.load_from,
                            '--resume' if args.resume else 'resume=True'))
    for note in notes:
        if note is not None:
            log = runner.logger.warning if note[1] else runner.logger.info
            log(note[0])
    make_checkpoints_atomic(runner)
    runner.train()
    shutdown_dist()


if __name__ == '__main__':
    main()
