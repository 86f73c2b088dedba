"""Registered components; each module below registers on import."""
from .long_tail_accuracy import LongTailAccuracy  # noqa: F401
