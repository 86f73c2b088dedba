"""Reproduce the paper's CIFAR-10-LT (IF 100) rows: CE, Hybrid-SC, Hybrid-PSC.

Runs the rows named on the command line back to back, each with the
paper's recipe as the shipped configs have it (ResNet-32, 200 epochs, batch
512 per branch, SGD lr 0.5 momentum 0.9 wd 1e-4, lr x0.1 at epochs 120 and
160, alpha parabolic; the training set held in memory and augmented on the
device), evaluates each on the balanced test set every ``--val-interval``
epochs (10; a curve, chosen nothing by) and after training, and after each
row prints it and appends it to ``<work-dir>/results.json`` and
``<work-dir>/results.md``. Rows run by separate invocations with the same
``--work-dir`` accumulate in one table: top-1 after the last epoch,
many/medium/few-shot accuracy, the wall time of the training epochs,
training images/s (every view of every branch: 3N images per hybrid step of
N samples per branch, N per CE step, over that time), the published top-1
of the row (CE 70.36, Hybrid-SC 81.40, Hybrid-PSC 78.82) and how often the
run was resumed.

A run can be stopped at any time and continued with ``--resume``: a
checkpoint is written after every epoch (at most one epoch is lost), and
a resumed run continues exactly as the uninterrupted one. Every invocation
of a row is a segment, recorded in ``<work-dir>/<row>/segments.json`` after
every epoch: the commit of the code, the CPU (model, flags, threads) or
GPU, the precision and memory format, the epochs it trained, its training
time and images, and the test accuracy every ``--val-interval`` epochs. A
run keeps one precision and one memory format: a resume that would change
either is refused.

``--epochs`` / ``--batch-size`` shorten the recipe (lr milestones at 60 %
and 80 % of the epochs, lr scaled linearly from 0.5 at batch 512);
``--amp`` trains in mixed precision (fp16 AMP on CUDA, bf16 autocast on the
CPU).

Data (``--data-root``): the compact long-tailed WebP copy (default
``data/cifar10lt_if100_webp``, i.e. ``$MMLT_DATA_ROOT/cifar10lt_if100_webp``
copied into the ignored ``data/`` folder so that it travels with the working
tree: 39 MB), read as it is; or an image-folder PNG copy of the full
CIFAR-10 (``$MMLT_DATA_ROOT/cifar10``), cut to IF 100 by the protocol (the
same 12,406 images). ``MMLT_DATA_ROOT`` is the folder that holds the data
sets, by default ``../shared/data`` (README.md, "Tests and CI").

GPU run, from the repository root, one row per invocation (each row's
checkpoints and logs go to ``<work-dir>/<row>/``)::

    MMLT_DATA_ROOT=${MMLT_DATA_ROOT:-../shared/data}
    mkdir -p data && cp -r $MMLT_DATA_ROOT/cifar10lt_if100_webp data/
    python tools/benchmarks/reproduce_cifar10lt.py Hybrid-SC \
        --data-root data/cifar10lt_if100_webp --amp \
        --work-dir work_dirs/reproduce_cifar10lt
    python tools/benchmarks/reproduce_cifar10lt.py Hybrid-PSC \
        --data-root data/cifar10lt_if100_webp --amp \
        --work-dir work_dirs/reproduce_cifar10lt
    python tools/benchmarks/reproduce_cifar10lt.py CE \
        --data-root data/cifar10lt_if100_webp --amp \
        --work-dir work_dirs/reproduce_cifar10lt
    cat work_dirs/reproduce_cifar10lt/results.md

or all three in one command::

    python tools/benchmarks/reproduce_cifar10lt.py CE Hybrid-SC Hybrid-PSC \
        --data-root data/cifar10lt_if100_webp --amp \
        --work-dir work_dirs/reproduce_cifar10lt
"""
import argparse
import copy
import json
import os
import os.path as osp
from datetime import datetime
from typing import Dict, List

from cifar10lt_common import (
    PAPER_METHODS,
    build_run_cfg,
    check_data_root,
    describe_cfg,
    environment,
    fmt,
    markdown_table,
    metric,
    new_segment,
    paper_method_name,
    positive_int,
    train_segment,
)

#: Top-1 (%) of ResNet-32 on CIFAR-10-LT IF 100 in the paper's table.
PUBLISHED = {'CE': 70.36, 'Hybrid-SC': 81.40, 'Hybrid-PSC': 78.82}
HEADER = [
    'row', 'top-1', 'many', 'medium', 'few', 'train (s)', 'images/s',
    'published top-1', 'top-1 - published', 'recipe', 'device', 'resumes',
    'commit', 'finished'
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Without --epochs/--batch-size: the paper recipe (200 epochs, '
        'batch 512 per branch, lr 0.5, x0.1 at 120/160).')
    parser.add_argument(
        'rows',
        nargs='+',
        type=paper_method_name,
        metavar='ROW',
        help='rows to run, in order: '
        f'{", ".join(PAPER_METHODS)} (the rows with a '
        'published top-1; cifar10lt_short.py runs the others)')
    parser.add_argument(
        '--data-root',
        default='data/cifar10lt_if100_webp',
        help='the long-tailed WebP copy, or a PNG folder '
        'copy of CIFAR-10 (cut to IF 100 here)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: fp16 AMP on CUDA, bf16 '
        'autocast on the CPU')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/reproduce_cifar10lt',
        help='results.json / results.md here (appended), '
        'each row\'s logs and checkpoints in <work-dir>/<row>')
    parser.add_argument(
        '--epochs',
        type=positive_int,
        default=None,
        help='override the 200 epochs (lr milestones at '
        '60 %% / 80 %%)')
    parser.add_argument(
        '--batch-size',
        type=positive_int,
        default=None,
        help='override the 512 images per branch per step '
        '(lr scaled linearly from 0.5 at 512)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--val-interval',
        type=positive_int,
        default=10,
        help='epochs between evaluations on the test set '
        '(the accuracy curve); the last epoch is always '
        'evaluated')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='continue each row from the latest checkpoint '
        'in <work-dir>/<row> (a row without one starts from '
        'scratch); without it a row that has a run there is '
        'refused')
    args = parser.parse_args()
    check_data_root(parser, args)
    return args


def load_rows(path: str) -> List[Dict[str, object]]:
    """The rows already in ``results.json`` (none when it does not exist)."""
    if not osp.exists(path):
        return []
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} is not valid JSON ({err}); move it '
                             'away or give another --work-dir') from None
    if not (isinstance(data, dict) and isinstance(data.get('rows'), list)):
        raise ValueError(f'{path} was not written by this script (expected '
                         '{"rows": [...]}); move it away or give another '
                         '--work-dir')
    return data['rows']


def recipe(row: Dict[str, object]) -> str:
    """The settings of a row in a few words."""
    s = row['settings']
    layout = s.get('memory_format')
    return (f"{s['epochs']} ep, bs {s['batch_size']}, lr {s['lr']:g}, "
            f"{s['precision']}{', ' + layout if layout else ''}, "
            f"seed {s['seed']}, {row['data_format']}")


def table_row(row: Dict[str, object]) -> List[str]:
    published = row['published_top1']
    top1 = row['top1']
    commit = str(row.get('commit', '-'))
    return [
        row['row'],
        fmt(top1),
        fmt(row['many']),
        fmt(row['medium']),
        fmt(row['few']),
        fmt(row['train_s'], '.1f'),
        fmt(row['images_per_s'], '.0f'),
        fmt(published),
        fmt(None if top1 is None else top1 - published, '+.2f'),
        recipe(row),
        row['device'],
        str(row.get('resumes', '-')),
        commit[:10] + commit[40:],
        row['finished'],
    ]


def write_results(work_dir: str, rows: List[Dict[str, object]]) -> str:
    """Write every row to results.json and results.md; returns the table."""
    table = markdown_table(HEADER, [table_row(row) for row in rows])
    for name, text in (
        ('results.json', json.dumps(dict(rows=rows), indent=2)),
        ('results.md', '# CIFAR-10-LT IF 100, ResNet-32: reproduction\n'
         '\nAccuracy in % on the balanced test set after the last '
         'epoch. "train (s)": wall time of the training epochs; '
         '"images/s": training images processed (3N per hybrid step, '
         'N per CE step) over that time. Published: the paper\'s '
         'table.\n\n' + table + '\n')):
        path = osp.join(work_dir, name)
        with open(path + '.tmp', 'w') as f:
            f.write(text)
        os.replace(path + '.tmp', path)
    return table


def run_row(name: str, args: argparse.Namespace) -> Dict[str, object]:
    """Train (or resume) and test one row; returns its results row."""
    cfg = build_run_cfg(name, args, log_interval=10)
    row_dir = cfg.work_dir
    # A checkpoint after every epoch (the latest kept), the test set
    # evaluated every val_interval epochs for the curve.
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1)
    cfg.val_dataloader = copy.deepcopy(cfg.test_dataloader)
    cfg.val_evaluator = copy.deepcopy(cfg.test_evaluator)
    cfg.val_cfg = dict()
    cfg.train_cfg.val_interval = args.val_interval
    settings = describe_cfg(cfg)
    segment = new_segment(cfg)
    settings['memory_format'] = segment['memory_format']
    described = recipe(dict(settings=settings, data_format=args.data_format))
    result, segments = train_segment(cfg, row_dir, args.resume, segment,
                                     f'{name}: {described}')
    return dict(
        row=name,
        top1=metric(result, 'top1'),
        many=metric(result, 'many'),
        medium=metric(result, 'medium'),
        few=metric(result, 'few'),
        mean_class_acc=metric(result, 'mean_class_acc'),
        published_top1=PUBLISHED[name],
        train_s=result['train_s'],
        setup_s=result['setup_s'],
        iters=result['iters'],
        images=result['images'],
        images_per_s=result['images_per_s'],
        class_counts=result['class_counts'],
        settings=settings,
        data_root=osp.abspath(args.data_root),
        data_format=args.data_format,
        device=' / '.join(sorted({seg['device']
                                  for seg in segments})),
        resumes=result['resumes'],
        commit=result['commit'],
        segments=segments,
        finished=f'{datetime.now():%Y-%m-%d %H:%M}')


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    results_json = osp.join(args.work_dir, 'results.json')
    load_rows(results_json)  # refuse a foreign file before training
    data = ('the long-tailed WebP copy, as it is' if args.data_format == 'webp'
            else 'a PNG copy of CIFAR-10, cut at IF 100')
    print(
        f'CIFAR-10-LT IF 100 reproduction: rows {", ".join(args.rows)}\n'
        f'device: {environment()}\n'
        f'data: {osp.abspath(args.data_root)} ({data})\n'
        f'results: {osp.abspath(args.work_dir)}/results.md',
        flush=True)
    for name in args.rows:
        row = run_row(name, args)
        rows = load_rows(results_json) + [row]
        table = write_results(args.work_dir, rows)
        print(
            f'\n{name}: top-1 {fmt(row["top1"])} (published '
            f'{row["published_top1"]:.2f}), train {row["train_s"]:.1f} s, '
            f'{row["images_per_s"]:.0f} images/s\n\n{table}\n',
            flush=True)


if __name__ == '__main__':
    main()
