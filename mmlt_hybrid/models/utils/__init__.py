"""Registered components; each module below registers on import."""
from .batch_auto_augment import BatchCutout, BatchRandAugment
from .batch_transforms import (BatchColorJitter, BatchRandomCrop,
                               BatchRandomFlip, BatchRandomGrayscale)
from .data_preprocessor import HybridDataPreprocessor

__all__ = [
    'BatchColorJitter', 'BatchCutout', 'BatchRandAugment', 'BatchRandomCrop',
    'BatchRandomFlip', 'BatchRandomGrayscale', 'HybridDataPreprocessor'
]
