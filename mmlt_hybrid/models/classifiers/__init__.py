"""Registered components; each module below registers on import."""
from .hybrid_classifier import HybridClassifier  # noqa: F401
