"""Registered components; each module below registers on import."""
from .batch_transforms import (BatchColorJitter, BatchRandomCrop,
                               BatchRandomFlip, BatchRandomGrayscale)
from .data_preprocessor import HybridDataPreprocessor
from .step_rng import step_generator, step_seed

__all__ = [
    'BatchColorJitter', 'BatchRandomCrop', 'BatchRandomFlip',
    'BatchRandomGrayscale', 'HybridDataPreprocessor', 'step_generator',
    'step_seed'
]
