"""Registered components; each module below registers on import."""
from .batch_auto_augment import BatchCutout, BatchRandAugment
from .batch_transforms import (BatchColorJitter, BatchRandomCrop,
                               BatchRandomFlip, BatchRandomGrayscale)
from .data_preprocessor import HybridDataPreprocessor
from .step_rng import step_generator, step_seed, step_seeded_global_rng

__all__ = [
    'BatchColorJitter', 'BatchCutout', 'BatchRandAugment', 'BatchRandomCrop',
    'BatchRandomFlip', 'BatchRandomGrayscale', 'HybridDataPreprocessor',
    'step_generator', 'step_seed', 'step_seeded_global_rng'
]
