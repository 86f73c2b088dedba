"""Speed and memory of a hybrid training step, measured side by side.

Prints, in one run on one machine:

(a) the raw backbone+neck forward+backward throughput on the batch of
    (V + 1) * N images that one hybrid step processes (the ceiling);
(b) the HybridClassifier train step (preprocessor, both heads, losses,
    backward, SGD step) on the same images, model only;
(d) the peak memory of the SupCon and PSC losses alone (forward+backward) for
    batch sizes 128 to 4096, each measured in a fresh subprocess as the growth
    of the peak resident set size (Linux: the peak is reset through
    /proc/self/clear_refs just before the loss, and glibc is told to map
    large blocks with mmap so that freed memory leaves the resident set).

A full runner iteration with its data path, on real images, is measured by
``tools/benchmarks/data_path_speed.py``.

Example::

    python tools/benchmarks/speed_memory.py \
        configs/hybrid_sc_r32_cifar10lt.py --batch-size 128
"""
import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401  (registers the components)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a hybrid CIFAR config')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=128,
        help='N, images per branch per step')
    parser.add_argument(
        '--views',
        type=int,
        default=2,
        help='V, augmented views of the uniform batch')
    parser.add_argument(
        '--steps',
        type=int,
        default=10,
        help='timed steps for (a) and (b), taken in turn; '
        'the median is reported')
    parser.add_argument(
        '--warmup', type=int, default=3, help='untimed steps before timing')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16 autocast + channels_last for (a) and (b)')
    parser.add_argument(
        '--loss-batches',
        type=int,
        nargs='+',
        default=[128, 256, 512, 1024, 2048, 4096],
        help='batch sizes N for (d); each uses V views')
    parser.add_argument(
        '--loss-classes',
        type=int,
        default=100,
        help='number of classes (prototypes) for (d)')
    parser.add_argument(
        '--skip',
        nargs='*',
        default=[],
        choices=['a', 'b', 'd'],
        help='parts to skip')
    parser.add_argument('--json', help='also write the numbers to this file')
    # Internal: one memory measurement in a child process.
    parser.add_argument(
        '--_loss-child',
        nargs=3,
        metavar=('LOSS', 'N', 'C'),
        help=argparse.SUPPRESS)
    return parser.parse_args()


def _autocast(enabled: bool):
    return torch.autocast('cpu', dtype=torch.bfloat16, enabled=enabled)


def _time_interleaved(steps: Dict[str, Callable[[], None]], warmup: int,
                      repeats: int) -> Dict[str, float]:
    """Median seconds per call of each step, the steps taken in turn.

    Alternating the steps (a, b, a, b, ...) exposes them to the same load
    drift, so their ratio stays meaningful on a shared machine.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _fake_batch(num_classes: int, n: int, views: int) -> Dict:
    """A collated hybrid batch as the dataloader hands it to the model:
    ``views`` decoded views of the uniform images and the balanced images,
    each stacked to (n, 3, 32, 32) uint8 (``default_collate``)."""
    gen = torch.Generator().manual_seed(0)

    def images():
        return torch.randint(
            0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)

    uniform = torch.randint(0, num_classes, (n, ), generator=gen)
    balanced = torch.randint(0, num_classes, (n, ), generator=gen)
    return dict(
        inputs=dict(views=[images() for _ in range(views)], balanced=images()),
        data_samples=dict(
            uniform=[DataSample().set_gt_label(int(y)) for y in uniform],
            balanced=[DataSample().set_gt_label(int(y)) for y in balanced]))


def bench_backbone_and_step(cfg: Config, args) -> Dict[str, float]:
    """Parts (a) and (b): images/s of the backbone alone and of train_step."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    model.train()
    if args.amp:
        model = model.to(memory_format=torch.channels_last)
    num_classes = cfg.model.head.num_classes
    rows = (args.views + 1) * args.batch_size
    lr = 0.01

    # (a) backbone + neck forward/backward + SGD step on normalised images.
    images = torch.randn(rows, 3, 32, 32)
    if args.amp:
        images = images.contiguous(memory_format=torch.channels_last)
    params = list(model.backbone.parameters()) + list(model.neck.parameters())
    raw_optim = torch.optim.SGD(params, lr=lr, momentum=0.9)

    def raw_step():
        raw_optim.zero_grad()
        with _autocast(args.amp):
            feats = model.neck(model.backbone(images))
        feats[-1].float().pow(2).mean().backward()
        raw_optim.step()

    # (b) the full HybridClassifier step from a collated uint8 batch.
    from mmengine.optim import OptimWrapper
    wrapper_type = OptimWrapper
    if args.amp:
        from mmlt_hybrid.engine.optimizers import CpuAmpOptimWrapper
        wrapper_type = CpuAmpOptimWrapper
    optim_wrapper = wrapper_type(
        optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    # The shipped configs hand over one decoded view and let the data
    # preprocessor make the views on the device.
    batch = _fake_batch(num_classes, args.batch_size,
                        1 if model.data_preprocessor.num_views else args.views)
    model.alpha = 0.5

    def hybrid_step():
        model.train_step(batch, optim_wrapper)

    secs = _time_interleaved(
        dict(raw=raw_step, hybrid=hybrid_step), args.warmup, args.steps)
    raw_s, hybrid_s = secs['raw'], secs['hybrid']
    return dict(
        images_per_step=rows,
        backbone_img_s=rows / raw_s,
        train_step_img_s=rows / hybrid_s,
        ratio_b_over_a=raw_s / hybrid_s)


def _loss_child(loss_name: str, n: int, num_classes: int, views: int) -> None:
    """Measure one loss's peak memory growth; prints MiB as JSON."""
    from mmlt_hybrid.models.losses import PSCLoss, SupConLoss
    torch.manual_seed(0)
    dim = 128
    rows = views * n
    labels = torch.randint(0, num_classes, (rows, ))
    feats = torch.nn.functional.normalize(torch.randn(rows, dim), dim=1)
    feats.requires_grad_(True)
    protos = torch.nn.functional.normalize(
        torch.randn(num_classes, dim), dim=1).requires_grad_(True)
    if loss_name == 'SupCon':
        loss_fn = SupConLoss(temperature=0.1)

        def run(f, y):
            return loss_fn(f, y)
    else:
        loss_fn = PSCLoss(temperature=0.1)

        def run(f, y):
            return loss_fn(f, y, protos)

    # Warm the kernels on a tiny batch so that their set-up is not counted.
    run(feats[:8], labels[:8]).backward()
    feats.grad = None
    protos.grad = None
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak resident set size (VmHWM) to now
    base = _status_kib('VmRSS')
    run(feats, labels).backward()
    peak = _status_kib('VmHWM')
    print(json.dumps(dict(peak_mib=(peak - base) / 1024)))


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status, in KiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'no {field} in /proc/self/status')


def bench_loss_memory(args) -> List[Dict]:
    """Part (d): peak memory of SupCon vs PSC, one subprocess each."""
    rows = []
    for n in args.loss_batches:
        row = dict(batch=n, anchors=args.views * n)
        for name in ('SupCon', 'PSC'):
            out = subprocess.run(
                [
                    sys.executable, __file__, 'unused', '--views',
                    str(args.views), '--_loss-child', name,
                    str(n),
                    str(args.loss_classes)
                ],
                # Blocks over 64 KiB are mmap-ed and unmapped when freed.
                env=dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536'),
                check=True,
                capture_output=True,
                text=True)
            row[name] = json.loads(
                out.stdout.strip().splitlines()[-1])['peak_mib']
        rows.append(row)
    return rows


def _growth_exponent(rows: List[Dict], key: str) -> float:
    """Least-squares slope of log(memory) on log(batch), larger half."""
    pts = [(math.log(r['batch']), math.log(max(r[key], 1e-3)))
           for r in rows[len(rows) // 2:]]
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    num = sum((x - mx) * (y - my) for x, y in pts)
    den = sum((x - mx)**2 for x, _ in pts)
    return num / den if den else float('nan')


def main() -> None:
    args = parse_args()
    if args._loss_child:
        name, n, c = args._loss_child
        _loss_child(name, int(n), int(c), args.views)
        return
    cfg = Config.fromfile(args.config)
    results: Dict = dict(
        machine=f'{platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} CPUs, torch {torch.__version__}, '
        f'{torch.get_num_threads()} threads',
        config=args.config,
        batch_size=args.batch_size,
        views=args.views,
        amp=args.amp)
    print(f'# {results["machine"]}')
    print(f'# config {args.config}, N={args.batch_size}, V={args.views}, '
          f'amp={args.amp}')
    if 'a' not in args.skip or 'b' not in args.skip:
        ab = bench_backbone_and_step(cfg, args)
        results.update(ab)
        print(f'(a) backbone+neck fwd+bwd+SGD : '
              f'{ab["backbone_img_s"]:8.1f} img/s '
              f'({ab["images_per_step"]} images per step)')
        print(f'(b) HybridClassifier step    : '
              f'{ab["train_step_img_s"]:8.1f} img/s')
        print(f'    ratio (b)/(a)            : {ab["ratio_b_over_a"]:.3f}')
    if 'd' not in args.skip:
        rows = bench_loss_memory(args)
        results['loss_memory'] = rows
        print(f'(d) peak memory of the loss alone, forward+backward, '
              f'V={args.views}, C={args.loss_classes}, d=128 (MiB)')
        print(f'    {"N":>6} {"anchors":>8} {"SupCon":>10} {"PSC":>10}')
        for r in rows:
            print(f'    {r["batch"]:>6} {r["anchors"]:>8} '
                  f'{r["SupCon"]:>10.1f} {r["PSC"]:>10.1f}')
        print(f'    growth exponent (log-log slope, larger half): '
              f'SupCon {_growth_exponent(rows, "SupCon"):.2f}, '
              f'PSC {_growth_exponent(rows, "PSC"):.2f} '
              f'(1 = linear, 2 = quadratic)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
