#!/usr/bin/env python
"""Evaluate a checkpoint on a config's test set.

The command line follows mmpretrain's ``tools/test.py``. ``mmlt_hybrid`` is
imported here, so its components are registered (and the checkpoint loader
knows mmengine's classes) even when a config forgot ``custom_imports``.

Examples::

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8 [ARGS]
"""
import argparse
from typing import List, Optional

import mmengine
from mmengine.config import Config

import mmlt_hybrid  # noqa: F401  (registers components and safe globals)
from mmlt_hybrid.utils import (
    StrictLoadHook,
    add_common_args,
    add_data_hooks,
    build_runner,
    check_checkpoint,
    parse_common,
    require_file,
    set_launcher_and_work_dir,
    shutdown_dist,
    tool_parser,
)

_PRED_SUFFIXES = ('.pkl', '.pickle')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The parsed command line (``argv``, default ``sys.argv[1:]``)."""
    parser = tool_parser('Evaluate a checkpoint', 'the evaluation log')
    parser.add_argument('checkpoint', help='path of the checkpoint file')
    parser.add_argument(
        '--out',
        help='file to write: the per-sample predictions (.pkl/.pickle) or, '
        'with --out-item metrics, the metrics (.json/.yaml/.pkl)')
    parser.add_argument(
        '--out-item',
        choices=['pred', 'metrics'],
        default='pred',
        help='what --out holds (default: pred)')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load a checkpoint that does not fit the model (keys missing, '
        'unexpected or of another shape, e.g. from another depth or '
        'num_classes) as mmengine\'s load_checkpoint(strict=False) does: '
        'only the fitting weights are loaded, the others keep their initial '
        'values and are only logged. By default such a checkpoint is '
        'refused with the list of keys')
    add_common_args(parser, 'tools/dist_test.sh')
    args = parse_common(parser, argv)
    if args.out is not None and args.out_item == 'pred' and not \
            args.out.endswith(_PRED_SUFFIXES):
        parser.error(f'--out {args.out!r}: predictions are written as a '
                     f'pickle, the file name must end with {_PRED_SUFFIXES}')
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to ``cfg``; returns the same, changed, config."""
    set_launcher_and_work_dir(cfg, args)
    cfg.load_from = args.checkpoint
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.out is not None and args.out_item == 'pred':
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, dict) and 'metrics' in evaluator:
            metrics = evaluator['metrics']
            if not isinstance(metrics, (list, tuple)):
                metrics = [metrics]
            evaluator['metrics'] = list(metrics) + [dump]
        elif isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = list(evaluator) + [dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    add_data_hooks(cfg)
    return cfg


def main(argv: Optional[List[str]] = None) -> dict:
    """Evaluate as the command line says.

    The checkpoint is checked for damage before the runner is built
    (:func:`check_checkpoint`) and, unless ``--non-strict``, must fit the
    model (:class:`StrictLoadHook`).

    Returns:
        dict: The metrics.
    """
    args = parse_args(argv)
    require_file(args.config, 'config')
    check_checkpoint(args.checkpoint, 'checkpoint')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)

    runner = build_runner(cfg, args.launcher)
    if not args.non_strict:
        runner.register_hook(
            StrictLoadHook(
                cfg.load_from, 'Check that the config is the one the '
                'checkpoint was trained with, or pass --non-strict to '
                'evaluate with only the fitting weights loaded.'))
    metrics = runner.test()
    if args.out is not None and args.out_item == 'metrics':
        if runner.rank == 0:
            mmengine.dump(metrics, args.out)
    shutdown_dist()
    return metrics


if __name__ == '__main__':
    main()
