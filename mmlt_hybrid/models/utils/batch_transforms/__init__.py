"""Batch transforms: random augmentation of whole batches on the model's
device, each image with its own draws; one family per module."""
from ....registry import BATCH_TRANSFORMS
from .base import (
    BaseBatchTransform,
    apply_batch_transforms,
    build_batch_transforms,
)
from .colour import BatchColorJitter, BatchRandomGrayscale
from .crop_flip import BatchRandomCrop, BatchRandomFlip
from .cutout import BatchCutout
from .rand_augment import BatchRandAugment

__all__ = [
    'BATCH_TRANSFORMS', 'BaseBatchTransform', 'BatchColorJitter',
    'BatchCutout', 'BatchRandAugment', 'BatchRandomCrop', 'BatchRandomFlip',
    'BatchRandomGrayscale', 'apply_batch_transforms', 'build_batch_transforms'
]
