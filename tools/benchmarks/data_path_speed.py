"""Does the data path bound training? A runner iteration against the model.

Builds the shipped Hybrid-SC CIFAR-10-LT config with its image-folder data
variant (``configs/_base_/datasets/cifar10lt_folder.py``) on a real
CIFAR-10 copy and times, in one process and interleaved, two things:

(a) the ceiling: backbone + neck forward + backward + SGD step of ResNet-32
    on the (V + 1) * N = 3N normalised images of the same hybrid step (the
    tensor the model's backbone was given), already in memory, under the
    same precision, with a copy of the model's backbone as it stands after
    the step (the same weights, SGD with the config's momentum and weight
    decay);
(c) a full ``runner.train`` iteration of the config (data loading,
    preprocessing with the batch transforms, both heads and losses,
    backward, SGD, the hooks), in one of the data modes:

    - ``held``: the long-tailed set decoded once and held in memory, no
      worker processes (the shipped setting);
    - ``workers``: images decoded in ``--num-workers`` worker processes,
      augmented on the device;
    - ``per-sample``: the per-sample mmcv augmentation in the workers
      (``configs/_base_/datasets/cifar10lt_per_sample.py``), for reference.

One ceiling step is timed after every runner iteration (by a hook, outside
the iteration's own time), so both see the same machine load; the ratio of
the medians (c)/(a) in images per second is printed per mode.

Example (``MMLT_DATA_ROOT``: the folder that holds the data sets, by
default ``../shared/data``; README.md, "Tests and CI")::

    MMLT_DATA_ROOT=${MMLT_DATA_ROOT:-../shared/data}
    python tools/benchmarks/data_path_speed.py --data-root \
        $MMLT_DATA_ROOT/cifar10 --modes held workers per-sample --amp
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import tempfile
import time
from datetime import datetime
from typing import Dict, List

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmlt_hybrid  # noqa: F401  (registers the components)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDER_DATA = 'configs/_base_/datasets/cifar10lt_folder.py'
PER_SAMPLE_DATA = 'configs/_base_/datasets/cifar10lt_per_sample.py'
MODEL = 'configs/_base_/models/hybrid_sc_r32.py'
SCHEDULE = 'configs/_base_/schedules/cifar_lt_200e.py'
RUNTIME = 'configs/_base_/default_runtime.py'
MODES = ('held', 'workers', 'per-sample')
MEMORY_FORMATS = ('contiguous', 'channels_last')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data-root',
        default='data/cifar10_folder',
        help='image-folder copy of CIFAR-10 '
        '(<root>/{train,test}/<class>/*.png)')
    parser.add_argument(
        '--modes', nargs='+', default=list(MODES), choices=MODES)
    parser.add_argument(
        '--batch-size',
        type=int,
        default=128,
        help='N, images per branch per step')
    parser.add_argument(
        '--iters',
        type=int,
        default=24,
        help='runner iterations per mode; the first '
        '--warmup are not timed')
    parser.add_argument('--warmup', type=int, default=4)
    parser.add_argument(
        '--num-workers',
        type=int,
        default=2,
        help='decoding workers of the workers and '
        'per-sample modes')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16 autocast on the CPU (fp16 on CUDA), '
        'for both (a) and (c)')
    parser.add_argument(
        '--memory-formats',
        nargs='+',
        default=['channels_last'],
        choices=MEMORY_FORMATS,
        help='the layout the images are handed over in '
        '(data_preprocessor.channels_last); with both, each '
        'mode runs in both, alternately --repeats times, '
        'and the ratio of their runner iterations is printed')
    parser.add_argument(
        '--repeats',
        type=int,
        default=1,
        help='runs of every (mode, memory format), '
        'alternating; medians over them are printed')
    return parser.parse_args()


def build_cfg(mode: str,
              args: argparse.Namespace,
              work_dir: str,
              memory_format: str = 'channels_last') -> Config:
    """The shipped Hybrid-SC config on the folder copy in one data mode and
    memory format."""
    data = PER_SAMPLE_DATA if mode == 'per-sample' else FOLDER_DATA
    cfg = Config.fromfile(osp.join(REPO, data))
    for part in (MODEL, SCHEDULE, RUNTIME):
        cfg.merge_from_dict(Config.fromfile(osp.join(REPO, part)).to_dict())
    cfg.model.head.num_classes = 10
    cfg.data_preprocessor.channels_last = memory_format == 'channels_last'
    loader = cfg.train_dataloader
    if mode == 'per-sample':
        # The per-sample config reads CIFAR10's files: point it at the
        # folder copy like cifar10lt_folder.py does.
        folder = Config.fromfile(osp.join(REPO, FOLDER_DATA))
        loader.dataset.dataset.dataset = \
            folder.train_dataloader.dataset.dataset.dataset
    loader.dataset.dataset.dataset.data_root = args.data_root
    loader.batch_size = args.batch_size
    if mode != 'held':
        loader.dataset.hold_in_memory = False
        loader.num_workers = args.num_workers
        loader.persistent_workers = True
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters)
    cfg.custom_hooks = [
        dict(
            type='HybridTransitionHook', schedule='parabolic', by_epoch=False)
    ]
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator',
                'param_scheduler'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1000)
    cfg.optim_wrapper.optimizer.lr = 0.5 * args.batch_size / 512
    if args.amp:
        cfg.optim_wrapper.type = ('AmpOptimWrapper'
                                  if torch.cuda.is_available() else
                                  'CpuAmpOptimWrapper')
    cfg.log_level = 'WARNING'
    cfg.work_dir = work_dir
    return cfg


class CeilingHook(Hook):
    """Times each runner iteration, then one ceiling step outside it.

    The ceiling step trains a copy of the model's backbone, refreshed from
    the model before every step (untimed), on the images the model's
    backbone was given in the iteration just timed.
    """

    priority = 'LOWEST'

    def __init__(self, amp: bool, warmup: int) -> None:
        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.amp = amp
        self.warmup = warmup
        self.iter_s: List[float] = []
        self.ceiling_s: List[float] = []
        self._end = None
        self._images = None

    def _sync(self) -> None:
        if self.device == 'cuda':
            torch.cuda.synchronize()

    def _keep_images(self, module, args) -> None:
        self._images = args[0].detach()

    def _ceiling_step(self) -> None:
        self.optim.zero_grad()
        dtype = torch.float16 if self.device == 'cuda' else torch.bfloat16
        with torch.autocast(self.device, dtype=dtype, enabled=self.amp):
            feats = self.backbone(self._images)[-1].mean(dim=(2, 3))
        feats.float().pow(2).mean().backward()
        self.optim.step()

    def before_train(self, runner) -> None:
        model = runner.model
        self.backbone = copy.deepcopy(model.backbone)
        model.backbone.register_forward_pre_hook(self._keep_images)
        sgd = runner.cfg.optim_wrapper.optimizer
        self.optim = torch.optim.SGD(
            self.backbone.parameters(),
            lr=sgd.lr,
            momentum=sgd.momentum,
            weight_decay=sgd.weight_decay)
        self._end = time.perf_counter()

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self._sync()
        now = time.perf_counter()
        timed = runner.iter >= self.warmup
        if timed:
            self.iter_s.append(now - self._end)
        self.backbone.load_state_dict(runner.model.backbone.state_dict())
        self._sync()
        start = time.perf_counter()
        self._ceiling_step()
        self._sync()
        if timed:
            self.ceiling_s.append(time.perf_counter() - start)
        self._end = time.perf_counter()


def bench_mode(mode: str,
               args: argparse.Namespace,
               memory_format: str = 'channels_last') -> Dict[str, float]:
    rows = 3 * args.batch_size
    with tempfile.TemporaryDirectory() as work_dir:
        runner = Runner.from_cfg(
            build_cfg(mode, args, work_dir, memory_format))
        hook = CeilingHook(args.amp, args.warmup)
        runner.register_hook(hook)
        runner.train()
    iter_s = statistics.median(hook.iter_s)
    ceiling_s = statistics.median(hook.ceiling_s)
    return dict(
        runner_img_s=rows / iter_s,
        ceiling_img_s=rows / ceiling_s,
        ratio=ceiling_s / iter_s)


def main() -> None:
    args = parse_args()
    if not osp.isdir(osp.join(args.data_root, 'train')):
        raise FileNotFoundError(
            f'--data-root {args.data_root!r} has no train/ folder; expected '
            'an image-folder copy of CIFAR-10 (<root>/train/<class>/*.png)')
    from mmlt_hybrid.utils.cpu_info import read_cpuinfo, speed_flags
    cpu = read_cpuinfo()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() \
        else f'{cpu["model"]} ({" ".join(speed_flags(cpu["flags"]))}), ' \
        f'{os.cpu_count()} CPUs, {torch.get_num_threads()} threads'
    print(f'# {device}, torch {torch.__version__}, '
          f'{datetime.now():%Y-%m-%d %H:%M}')
    print(f'# Hybrid-SC ResNet-32, N={args.batch_size} per branch '
          f'({3 * args.batch_size} images a step), amp={args.amp}, '
          f'{args.iters - args.warmup} timed iterations per mode')
    print('| data mode | memory format | (c) runner iteration (img/s) | '
          '(a) ceiling (img/s) | (c)/(a) |\n|---|---|---|---|---|')
    for mode in args.modes:
        name = mode if mode == 'held' else \
            f'{mode}, {args.num_workers} workers'
        runs = {fmt: [] for fmt in args.memory_formats}
        for _ in range(max(1, args.repeats)):
            for fmt in args.memory_formats:
                runs[fmt].append(bench_mode(mode, copy.copy(args), fmt))
        medians = {
            fmt: {
                key: statistics.median(r[key] for r in rs)
                for key in rs[0]
            }
            for fmt, rs in runs.items()
        }
        for fmt, r in medians.items():
            print(
                f'| {name} | {fmt} | {r["runner_img_s"]:.1f} | '
                f'{r["ceiling_img_s"]:.1f} | {r["ratio"]:.3f} |',
                flush=True)
        if len(medians) == 2:
            pairs = [
                b['runner_img_s'] / a['runner_img_s']
                for a, b in zip(runs['contiguous'], runs['channels_last'])
            ]
            print(
                f'# {name}: runner iteration channels_last / contiguous, '
                f'per repeat: {", ".join(f"{p:.3f}" for p in pairs)}; '
                f'median {statistics.median(pairs):.3f}',
                flush=True)


if __name__ == '__main__':
    main()
