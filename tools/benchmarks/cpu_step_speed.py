"""Does a CPU gain from bf16 autocast or the channels-last layout?

Times one ResNet-32 forward + backward + SGD step on ``--batch`` random
CIFAR-sized images in several settings, interleaved step by step in one
process (fp32 contiguous, fp32 channels-last, bf16 autocast contiguous by
default), and prints each setting's median seconds per step and its ratio
to fp32 contiguous, pair by pair and as the median. The CPU's model and
speed flags head the output: bf16 is native only with ``avx512_bf16`` or
``amx_bf16`` (``--amp`` on a CPU without them trains in fp32).

Example::

    python tools/benchmarks/cpu_step_speed.py --threads 1 --steps 5
"""
import argparse
import statistics
import time
from datetime import datetime

import torch
from mmpretrain.registry import MODELS

import mmlt_hybrid  # noqa: F401  (registers CifarResNet)
from mmlt_hybrid.utils.cpu_info import read_cpuinfo, speed_flags

SETTINGS = ('fp32', 'fp32-channels-last', 'bf16', 'bf16-channels-last')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--settings',
        nargs='+',
        choices=SETTINGS,
        default=['fp32', 'fp32-channels-last', 'bf16'])
    parser.add_argument(
        '--batch',
        type=int,
        default=384,
        help='images a step (3 x 128: a hybrid step)')
    parser.add_argument(
        '--steps',
        type=int,
        default=5,
        help='timed steps of each setting (after one '
        'untimed)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: torch\'s)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = read_cpuinfo()
    print(f'# {cpu["model"]} ({" ".join(speed_flags(cpu["flags"]))}), '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}, '
          f'{datetime.now():%Y-%m-%d %H:%M}; ResNet-32, {args.batch} '
          f'images a step, {args.steps} timed steps each')
    images = torch.randn(args.batch, 3, 32, 32)
    runs = {}
    for setting in args.settings:
        torch.manual_seed(0)
        model = MODELS.build(dict(type='CifarResNet', depth=32))
        x = images
        if setting.endswith('channels-last'):
            model = model.to(memory_format=torch.channels_last)
            x = images.contiguous(memory_format=torch.channels_last)
        runs[setting] = (model, x,
                         torch.optim.SGD(
                             model.parameters(), lr=0.1, momentum=0.9), [])
    for step in range(args.steps + 1):
        for setting, (model, x, optim, times) in runs.items():
            start = time.perf_counter()
            with torch.autocast(
                    'cpu',
                    dtype=torch.bfloat16,
                    enabled=setting.startswith('bf16')):
                loss = model(x)[-1].mean((2, 3)).float().pow(2).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
            if step:
                times.append(time.perf_counter() - start)
    base = runs[args.settings[0]][3]
    print(f'| setting | s/step (median) | images/s | / {args.settings[0]} '
          '(median of pairs) | pairs |\n|---|---|---|---|---|')
    for setting, (_, _, _, times) in runs.items():
        pairs = [t / b for t, b in zip(times, base)]
        median = statistics.median(times)
        print(
            f'| {setting} | {median:.3f} | {args.batch / median:.0f} | '
            f'{statistics.median(pairs):.2f} | '
            f'{", ".join(f"{p:.2f}" for p in pairs)} |',
            flush=True)


if __name__ == '__main__':
    main()
