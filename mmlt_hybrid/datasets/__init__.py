"""Registered components; each module below registers on import."""
from .hybrid_pair import HybridPairDataset
from .image_folder import ImageFolderDataset
from .long_tailed import LongTailedDataset, long_tailed_counts
from .samplers import ClassBalancedPairSampler, ClassBalancedSampler
from .transforms import CheckedLoadImageFromFile

__all__ = [
    'LongTailedDataset', 'long_tailed_counts', 'HybridPairDataset',
    'ClassBalancedPairSampler', 'ClassBalancedSampler', 'ImageFolderDataset',
    'CheckedLoadImageFromFile'
]
from .synthetic import SyntheticImageDataset  # noqa: F401
