"""Registered components; each module below registers on import."""
from .batch_transforms import (
    BatchColorJitter,
    BatchCutout,
    BatchRandAugment,
    BatchRandomCrop,
    BatchRandomFlip,
    BatchRandomGrayscale,
)
from .data_preprocessor import HybridDataPreprocessor

__all__ = [
    'BatchColorJitter', 'BatchCutout', 'BatchRandAugment', 'BatchRandomCrop',
    'BatchRandomFlip', 'BatchRandomGrayscale', 'HybridDataPreprocessor'
]
