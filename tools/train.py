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
from typing import List, Optional

from mmengine.config import Config

import mmlt_hybrid  # noqa: F401  (registers components and safe globals)
from mmlt_hybrid.utils import (add_data_hooks, add_common_args,
                               build_runner, check_checkpoint, enable_amp,
                               find_resume_checkpoint, make_checkpoints_atomic,
                               parse_common, require_file,
                               set_launcher_and_work_dir, shutdown_dist,
                               tool_parser)
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
    before anything is loaded). Checkpoints are written atomically
    (:func:`make_checkpoints_atomic`).
    """
    args = parse_args(argv)
    require_file(args.config, 'config')
    if args.resume not in (None, 'auto'):
        check_checkpoint(args.resume, 'checkpoint (--resume)')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    resume_note = None
    if cfg.get('resume') and not cfg.get('load_from'):
        cfg.load_from, resume_note = find_resume_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    if cfg.get('load_from') and cfg.load_from != args.resume:
        what = '--resume' if args.resume else 'load_from'
        check_checkpoint(cfg.load_from, f'checkpoint ({what})')

    runner = build_runner(cfg, args.launcher)
    if cfg.get('resume') and cfg.get('load_from'):
        runner.register_hook(
            ResumeCheckHook(cfg.load_from,
                            '--resume' if args.resume else 'resume=True'))
    if resume_note is not None:
        if cfg.resume:
            runner.logger.info(resume_note)
        else:
            runner.logger.warning(resume_note)
    make_checkpoints_atomic(runner)
    runner.train()
    shutdown_dist()


if __name__ == '__main__':
    main()
