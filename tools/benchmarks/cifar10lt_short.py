"""CE vs Hybrid-SC vs Hybrid-PSC on real CIFAR-10-LT, on a short budget.

Trains ResNet-32 with each method on CIFAR-10-LT (an image-folder copy of
CIFAR-10, ``<root>/{train,test}/<class>/*.png``, subsampled by the standard
exponential protocol) under the same short schedule, then evaluates on the
balanced test set and prints one table: top-1, mean per-class accuracy,
many/medium/few-shot accuracy and the wall time of each method.

The schedule is the paper's shape scaled to the budget: ``--epochs`` epochs,
lr x0.1 at 60 % and 80 % of them (120/200 and 160/200 in the paper), lr
scaled linearly from 0.5 at batch 512, alpha parabolic over the epochs.

Example::

    python tools/benchmarks/cifar10lt_short.py \
        --data-root ../shared/data/cifar10 --epochs 10 --batch-size 128
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import time
from datetime import datetime
from typing import Dict

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmlt_hybrid  # noqa: F401  (registers the components)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METHODS = {
    'CE': 'configs/ce_r32_cifar10lt.py',
    'Hybrid-SC': 'configs/hybrid_sc_r32_cifar10lt.py',
    'Hybrid-PSC': 'configs/hybrid_psc_r32_cifar10lt.py',
}
FOLDER_DATA = 'configs/_base_/datasets/cifar10lt_folder.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/cifar10_folder',
                        help='image-folder copy of CIFAR-10')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=128,
                        help='images per branch per step')
    parser.add_argument('--imbalance-factor', type=float, default=100)
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--amp', action='store_true',
                        help='bf16 autocast on CPU (fp16 AMP on CUDA)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default='work_dirs/cifar10lt_short')
    return parser.parse_args()


def build_cfg(method: str, args: argparse.Namespace) -> Config:
    """The method's experiment config on the folder copy, short schedule."""
    cfg = Config.fromfile(osp.join(REPO, METHODS[method]))
    folder = Config.fromfile(osp.join(REPO, FOLDER_DATA))
    # Same long-tailed training set and test set, read from image folders.
    lt = cfg.train_dataloader.dataset.dataset
    lt.dataset = copy.deepcopy(folder.train_dataloader.dataset.dataset.dataset)
    lt.dataset.data_root = args.data_root
    lt.imbalance_factor = args.imbalance_factor
    lt.seed = 0
    for split in ('val_dataloader', 'test_dataloader'):
        cfg[split] = copy.deepcopy(folder[split])
        cfg[split].dataset.data_root = args.data_root
        cfg[split].num_workers = args.num_workers
    cfg.train_dataloader.batch_size = args.batch_size
    cfg.train_dataloader.num_workers = args.num_workers
    cfg.train_dataloader.persistent_workers = args.num_workers > 0
    # The paper's schedule shape scaled to the budget.
    epochs = args.epochs
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs)
    cfg.param_scheduler = dict(
        type='MultiStepLR', by_epoch=True, gamma=0.1,
        milestones=[round(0.6 * epochs), round(0.8 * epochs)])
    cfg.optim_wrapper.optimizer.lr = 0.5 * args.batch_size / 512
    if args.amp:
        cfg.optim_wrapper.type = ('AmpOptimWrapper' if torch.cuda.is_available()
                                  else 'CpuAmpOptimWrapper')
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=epochs)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=20)
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    cfg.work_dir = osp.join(args.work_dir, method)
    cfg.experiment_name = f'{method}_{datetime.now():%Y%m%d_%H%M%S}'
    return cfg


def run_method(method: str, args: argparse.Namespace) -> Dict[str, float]:
    """Train and test one method; returns its metrics and wall time."""
    cfg = build_cfg(method, args)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - start
    metrics = runner.test()
    return dict(metrics, train_minutes=train_s / 60)


def main() -> None:
    args = parse_args()
    if not osp.isdir(osp.join(args.data_root, 'train')):
        raise FileNotFoundError(
            f'--data-root {args.data_root!r} has no train/ folder; expected '
            'an image-folder copy of CIFAR-10 (<root>/train/<class>/*.png)')
    os.makedirs(args.work_dir, exist_ok=True)
    results = {}
    for method in args.methods:
        results[method] = run_method(method, args)
    header = ('| method | top-1 | mean class acc | many | medium | few | '
              'train time (min) |\n|---|---|---|---|---|---|---|')
    lines = [header]
    for method, m in results.items():
        def get(key):
            hits = [v for k, v in m.items() if k.endswith(key)]
            return f'{hits[0]:.2f}' if hits else '-'
        lines.append(f'| {method} | {get("top1")} | {get("mean_class_acc")} '
                     f'| {get("many")} | {get("medium")} | {get("few")} | '
                     f'{m["train_minutes"]:.1f} |')
    table = '\n'.join(lines)
    info = (f'CIFAR-10-LT IF {args.imbalance_factor:g}, ResNet-32, '
            f'{args.epochs} epochs, batch {args.batch_size} per branch, '
            f'amp={args.amp}, seed {args.seed}; '
            f'{platform.processor() or platform.machine()}, '
            f'{os.cpu_count()} CPUs, torch {torch.__version__}; '
            f'{datetime.now():%Y-%m-%d %H:%M}')
    print(info)
    print(table)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(info=info, args=vars(args), results=results), f,
                  indent=2)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(info + '\n\n' + table + '\n')


if __name__ == '__main__':
    main()
