"""What the stronger recipe's augmentation costs, batched against per sample.

Times, in one process and interleaved (so both see the same machine load),
the augmentation of ``--batch-size`` random uint8 32 x 32 images by

- the batch transforms of ``configs/_base_/recipes/cifar_strong.py``
  (crop, flip, ``BatchRandAugment``, ``BatchCutout``) on one tensor on the
  device, as ``HybridDataPreprocessor`` runs them;
- mmpretrain's per-sample counterparts (``RandomCrop``, ``RandomFlip``,
  ``RandAugment``, ``Cutout``) image by image, as a data worker runs them;
- for scale, the paper's augmentation as batch transforms (crop, flip,
  grayscale).

It prints the median time per batch of each and the ratios. A training
step of ResNet-32 is not included: ``data_path_speed.py`` measures the
runner iteration.

Example::

    python tools/benchmarks/strong_augment_speed.py --batch-size 384
"""
import argparse
import os.path as osp
import platform
import statistics
import time
from datetime import datetime

import numpy as np
import torch
from mmengine.config import Config
from mmpretrain.registry import TRANSFORMS

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.utils.batch_transforms import (
    apply_batch_transforms,
    build_batch_transforms,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECIPE = 'configs/_base_/recipes/cifar_strong.py'
PAPER = 'configs/_base_/datasets/cifar10lt.py'


def per_sample_pipeline():
    """mmpretrain's transforms with the recipe's settings."""
    cfgs = [
        dict(type='RandomCrop', crop_size=32, padding=4),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='RandAugment',
            policies='timm_increasing',
            num_policies=2,
            magnitude_level=9,
            total_level=10,
            hparams=dict(pad_val=128)),
        dict(type='Cutout', shape=16, pad_val=128),
    ]
    return [TRANSFORMS.build(cfg) for cfg in cfgs]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=384)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    strong = build_batch_transforms(
        Config.fromfile(osp.join(REPO, RECIPE)).strong_batch_transforms)
    paper = build_batch_transforms(
        Config.fromfile(osp.join(REPO, PAPER)).cifar_batch_transforms)
    pipeline = per_sample_pipeline()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, 32, 32, 3), np.uint8)
    batch = torch.from_numpy(images).permute(0, 3, 1,
                                             2).contiguous().to(args.device)
    generator = torch.Generator(args.device).manual_seed(0)

    def sync():
        if batch.is_cuda:
            torch.cuda.synchronize()

    def batched(transforms):

        def run():
            apply_batch_transforms(transforms, batch, generator)
            sync()

        return run

    def per_sample():
        for img in images:
            results = dict(img=img.copy(), img_shape=(32, 32))
            for transform in pipeline:
                results = transform(results)

    runs = dict(
        batched_strong=batched(strong),
        per_sample_strong=per_sample,
        batched_paper=batched(paper))
    times = {name: [] for name in runs}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if repeat:
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f'{datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or "?"}, '
          f'{torch.get_num_threads()} threads, device {args.device}, '
          f'batch {args.batch_size}, median of {args.repeats}')
    for name, value in med.items():
        print(f'{name}: {value * 1e3:.1f} ms per batch, '
              f'{args.batch_size / value:.0f} images/s')
    print('batched_strong / per_sample_strong (time): '
          f'{med["batched_strong"] / med["per_sample_strong"]:.2f}')
    print('batched_strong / batched_paper (time): '
          f'{med["batched_strong"] / med["batched_paper"]:.2f}')


if __name__ == '__main__':
    main()
