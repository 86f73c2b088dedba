"""Registered components; each module below registers on import."""
from .hybrid_pair import HybridPairDataset
from .long_tailed import LongTailedDataset, long_tailed_counts
from .samplers import ClassBalancedPairSampler

__all__ = [
    'LongTailedDataset', 'long_tailed_counts', 'HybridPairDataset',
    'ClassBalancedPairSampler'
]
from .synthetic import SyntheticImageDataset  # noqa: F401
