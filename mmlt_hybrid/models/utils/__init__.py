"""Registered components; each module below registers on import."""
from .data_preprocessor import HybridDataPreprocessor  # noqa: F401
