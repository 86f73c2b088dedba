"""CE baselines vs the hybrid networks on real CIFAR-10-LT, on a short budget.

Trains ResNet-32 with each method (``--methods``, default all seven) on
CIFAR-10-LT under the same short schedule, each from its shipped config:

- ``CE``: cross-entropy on uniformly sampled images (ce_r32_cifar10lt.py);
- ``LA-CE``: logit-adjusted cross-entropy, tau 1 (ce_la_r32_cifar10lt.py);
- ``CE-CBS``: cross-entropy on class-balanced sampled images
  (ce_cbs_r32_cifar10lt.py);
- ``Hybrid-SC`` / ``Hybrid-PSC``: the paper's hybrids, the classifier on a
  class-balanced batch (hybrid_{sc,psc}_r32_cifar10lt.py);
- ``Hybrid-SC-LA`` / ``Hybrid-PSC-LA``: the classifier on the uniform views
  with logit-adjusted cross-entropy, no balanced batch
  (hybrid_{sc,psc}_la_r32_cifar10lt.py).

Then it evaluates each on the balanced test set and prints one table:
top-1, mean per-class accuracy, many/medium/few-shot accuracy, and the
training cost of each method: iterations, training images processed (every
view of every branch, per step of N samples: 3N for the paper's hybrids, two
views and a balanced image; 2N for the -LA hybrids, two views; N for the CE
methods), the wall time of the training epochs and images/s, so that methods
and data paths can also be compared at equal compute.

Data (``--data-root``), either:

- an image-folder copy of CIFAR-10 (``<root>/{train,test}/<class>/*.png``,
  e.g. ``$MMLT_DATA_ROOT/cifar10``), subsampled by the standard exponential
  protocol at ``--imbalance-factor`` (default 100);
- the compact long-tailed copy (``<root>/{train,test}/<class>/*.webp``, e.g.
  ``$MMLT_DATA_ROOT/cifar10lt_if100_webp``), detected by the ``.webp``
  files in ``train/`` and read as it is (already IF 100).

``MMLT_DATA_ROOT`` is the folder that holds the data sets, by default
``../shared/data`` (README.md, "Tests and CI").

Data path (``--data-path``):

- ``device`` (default, the shipped configs): the training set is decoded
  once and held in memory, no data workers, and the data preprocessor
  augments the whole batch on the model's device;
- ``per-sample``: mmpretrain transforms augment every sample in
  ``--num-workers`` data workers (``cifar10lt_per_sample.py``), the
  preprocessor only normalises.

Each config keeps its own schedule, scaled to ``--epochs`` (the paper's lr
x0.1 at epochs 120/200 and 160/200 become 60 % and 80 % of them; a
warm-up and a cosine scale alike, a warm-up staying at least one epoch);
``--warmup-epochs N`` gives every method the same linear warm-up. The lr
is scaled linearly from 0.5 at batch 512; alpha follows each config's
schedule over the epochs. The schedule each method ran is printed and is a
column of the table.
"train (s)" is the wall time of the training epochs (data loading and
steps); "setup (s)" that of building the training set (for the device path:
decoding it into memory) and the optimiser.

Runs survive interruption: each method checkpoints after every epoch into
``<work-dir>/<method>/`` and, once tested, writes its row to
``<work-dir>/<method>/result.json``. ``--resume`` continues the runs found
there (exactly as an uninterrupted run, the settings unchanged: a resume
with another schedule, precision or memory format is refused) and reads a
finished method's row back instead of training it again; the time, steps
and images of a resumed run add up its invocations (``segments.json``),
and "resumes" counts them. Without ``--resume`` a method whose folder
holds a run is refused.

Examples::

    MMLT_DATA_ROOT=${MMLT_DATA_ROOT:-../shared/data}
    python tools/benchmarks/cifar10lt_short.py \
        --data-root $MMLT_DATA_ROOT/cifar10 --epochs 10 --batch-size 128
    # the same with the old per-sample data path, for comparison
    python tools/benchmarks/cifar10lt_short.py \
        --data-root $MMLT_DATA_ROOT/cifar10 --epochs 10 --batch-size 128 \
        --data-path per-sample --num-workers 2
    # on the compact long-tailed WebP copy (already IF 100)
    python tools/benchmarks/cifar10lt_short.py \
        --data-root $MMLT_DATA_ROOT/cifar10lt_if100_webp --epochs 10 \
        --batch-size 128 --methods Hybrid-SC
    # three seeds of each method, resumable: mean ± std over the seeds
    python tools/benchmarks/cifar10lt_short.py \
        --data-root $MMLT_DATA_ROOT/cifar10lt_if100_webp --epochs 20 \
        --batch-size 128 --warmup-epochs 1 --methods CE Hybrid-SC \
        --seed 0 1 2 --resume
    # a subset: the logit-adjusted rows
    python tools/benchmarks/cifar10lt_short.py \
        --data-root $MMLT_DATA_ROOT/cifar10 --epochs 20 --batch-size 128 \
        --methods LA-CE Hybrid-SC-LA Hybrid-PSC-LA
"""
import argparse
import json
import math
import os
import os.path as osp
from datetime import datetime
from typing import Dict, List

from cifar10lt_common import (
    DATA_PATHS,
    KEPT,
    METHODS,
    build_run_cfg,
    check_data_root,
    describe_cfg,
    environment,
    fmt,
    markdown_table,
    method_name,
    metric,
    new_segment,
    non_negative_int,
    positive_int,
    train_segment,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='See the module docstring for the data and the columns.')
    parser.add_argument(
        '--data-root',
        default='data/cifar10_folder',
        help='image-folder copy of CIFAR-10 (PNG, cut to '
        'CIFAR-10-LT here) or the long-tailed WebP copy')
    parser.add_argument(
        '--data-path',
        default='device',
        choices=DATA_PATHS,
        help='device: set held in memory, batch augmentation '
        'by the data preprocessor (the shipped configs); '
        'per-sample: mmpretrain transforms in data workers')
    parser.add_argument('--epochs', type=positive_int, default=10)
    parser.add_argument(
        '--batch-size',
        type=positive_int,
        default=128,
        help='images per branch per step')
    parser.add_argument(
        '--imbalance-factor',
        type=float,
        default=None,
        help='IF of the long-tail cut of a PNG copy '
        '(default 100); not with the WebP copy')
    parser.add_argument(
        '--methods',
        nargs='+',
        type=method_name,
        default=list(METHODS),
        metavar='METHOD',
        help=f'any of {", ".join(METHODS)} (default: all; '
        'see the module docstring)')
    parser.add_argument(
        '--num-workers',
        type=non_negative_int,
        default=2,
        help='data workers of the per-sample training loader '
        'and of the test loader (the device path trains '
        'with 0)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16 autocast on CPU (fp16 AMP on CUDA)')
    parser.add_argument(
        '--seed',
        type=int,
        nargs='+',
        default=[0],
        help='one or more seeds; with several, every method runs with each '
        '(all methods of a seed, then the next seed) in '
        '<work-dir>/seed<S>/<method>, and the table gives each accuracy '
        'as mean ± standard deviation over the seeds')
    parser.add_argument(
        '--warmup-epochs',
        type=positive_int,
        default=None,
        help='a linear warm-up of this many epochs for every '
        "method (the config's own, resized, or LinearLR "
        'from 0.01 x lr per iteration); default: each '
        "config's own schedule, scaled to --epochs")
    parser.add_argument('--work-dir', default='work_dirs/cifar10lt_short')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='continue the runs found in --work-dir (a method that '
        'finished is read back, not trained again); without it a '
        'method whose folder holds a run is refused')
    args = parser.parse_args()
    check_data_root(parser, args)
    if args.data_format == 'webp' and args.imbalance_factor is not None:
        parser.error(
            f'--imbalance-factor {args.imbalance_factor:g}: --data-root '
            f'{args.data_root!r} holds the WebP copy, which is already '
            'long-tailed and read as it is; leave --imbalance-factor out')
    if args.imbalance_factor is not None and args.imbalance_factor < 1:
        parser.error('--imbalance-factor must be >= 1 (largest / smallest '
                     f'class), got {args.imbalance_factor:g}')
    return args


def run_method(method: str, args: argparse.Namespace) -> Dict[str, object]:
    """Train (or resume) and test one method; returns its metrics and costs
    and writes them to ``<work-dir>/<method>/result.json``."""
    cfg = build_run_cfg(
        method,
        args,
        imbalance_factor=args.imbalance_factor,
        data_path=args.data_path,
        num_workers=args.num_workers)
    run_dir = cfg.work_dir
    done = osp.join(run_dir, 'result.json')
    if args.resume and osp.exists(done):
        with open(done) as f:
            result = json.load(f)
        print(
            f'=== {method}: finished before ({done}), not trained again',
            flush=True)
        return result
    # a checkpoint after every epoch, the latest kept: a resume loses at
    # most one epoch
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1)
    settings = describe_cfg(cfg)
    segment = new_segment(cfg, settings=settings)
    result, _ = train_segment(
        cfg,
        run_dir,
        args.resume,
        segment,
        f'{method}: schedule {settings["schedule"]}',
        kept=KEPT + ('settings', ))
    result.update(settings=settings)
    with open(done + '.tmp', 'w') as f:
        json.dump(result, f, indent=2)
    os.replace(done + '.tmp', done)
    return result


def publish(args: argparse.Namespace, info: str, table: str,
            results: Dict[str, dict]) -> None:
    """Print a table under its header line ``info`` and write both, with
    ``results``, to ``args.work_dir``/results.{md,json}."""
    print(info)
    print(table)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(
            dict(info=info, args=vars(args), results=results), f, indent=2)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(info + '\n\n' + table + '\n')


def write_table(args: argparse.Namespace, results: Dict[str, dict]) -> None:
    """Print the table of one seed's ``results`` and write it with them to
    ``args.work_dir``/results.{md,json}."""
    header = [
        'method', 'top-1', 'mean class acc', 'many', 'medium', 'few', 'iters',
        'images processed', 'train (s)', 'images/s', 'setup (s)', 'schedule',
        'resumes'
    ]
    rows = [[
        method,
        fmt(metric(m, 'top1')),
        fmt(metric(m, 'mean_class_acc')),
        fmt(metric(m, 'many')),
        fmt(metric(m, 'medium')),
        fmt(metric(m, 'few')),
        str(m['iters']),
        str(m['images']),
        fmt(m['train_s'], '.1f'),
        fmt(m['images_per_s'], '.1f'),
        fmt(m['setup_s'], '.1f'),
        m['settings']['schedule'],
        str(m['resumes']),
    ] for method, m in results.items()]
    table = markdown_table(header, rows)
    info = describe_run(args, results, f'seed {args.seed}')
    publish(args, info, table, results)


def describe_run(args: argparse.Namespace, results: Dict[str, dict],
                 seeds: str) -> str:
    """The header line of a table: data, recipe, ``seeds``, machine, date."""
    counts = next(iter(results.values()))['class_counts'] or []
    data = ('the WebP copy as it is' if args.data_format == 'webp' else
            f'PNG copy cut at IF {args.imbalance_factor or 100:g}')
    return (f'CIFAR-10-LT ({data}: {sum(counts)} training images, '
            f'{max(counts, default=0)} ... {min(counts, default=0)} per '
            f'class), ResNet-32, {args.epochs} epochs, batch '
            f'{args.batch_size} per branch, data path {args.data_path}' +
            (f' ({args.num_workers} workers)' if args.data_path == 'per-sample'
             else '') + f', amp={args.amp}, {seeds}; {environment()}; '
            f'{datetime.now():%Y-%m-%d %H:%M}')


def mean_std(values: List[float]) -> str:
    """``mean ± sample standard deviation`` (``-`` for no value, the mean
    alone for one)."""
    if not values:
        return '-'
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f'{mean:.2f}'
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return f'{mean:.2f} ± {math.sqrt(var):.2f}'


def write_seed_table(args: argparse.Namespace, seeds: List[int],
                     by_seed: Dict[int, Dict[str, dict]]) -> None:
    """Print and write (``args.work_dir``/results.{md,json}) the table over
    the seeds: each accuracy as mean ± standard deviation, the cost as the
    mean of the seeds."""
    header = [
        'method', 'seeds', 'top-1', 'mean class acc', 'many', 'medium', 'few',
        'images processed', 'train (s)', 'images/s', 'schedule'
    ]
    rows = []
    for method in by_seed[seeds[0]]:
        runs = [by_seed[seed][method] for seed in seeds]

        def values(key, runs=runs):
            found = [metric(r, key) for r in runs]
            return [v for v in found if v is not None]

        rows.append([
            method,
            ' '.join(map(str, seeds)),
            *(mean_std(values(key))
              for key in ('top1', 'mean_class_acc', 'many', 'medium', 'few')),
            str(runs[0]['images']),
            fmt(sum(r['train_s'] for r in runs) / len(runs), '.1f'),
            fmt(sum(r['images_per_s'] for r in runs) / len(runs), '.1f'),
            runs[0]['settings']['schedule'],
        ])
    table = markdown_table(header, rows)
    info = describe_run(
        args, by_seed[seeds[0]],
        f'seeds {" ".join(map(str, seeds))} (mean ± sample '
        'standard deviation over them)')
    publish(args, info, table, {str(s): r for s, r in by_seed.items()})


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    seeds = list(dict.fromkeys(args.seed))
    by_seed = {}
    for seed in seeds:  # every method of a seed, then the next seed
        seed_args = argparse.Namespace(**vars(args))
        seed_args.seed = seed
        if len(seeds) > 1:
            seed_args.work_dir = osp.join(args.work_dir, f'seed{seed}')
            os.makedirs(seed_args.work_dir, exist_ok=True)
        by_seed[seed] = {
            method: run_method(method, seed_args)
            for method in dict.fromkeys(args.methods)
        }
        write_table(seed_args, by_seed[seed])
    if len(seeds) > 1:
        write_seed_table(args, seeds, by_seed)


if __name__ == '__main__':
    main()
