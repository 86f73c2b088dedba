"""Registered components; each module below registers on import."""
from .psc_head import PSCHead  # noqa: F401
from .supcon_head import ProjectionHead, SupConHead  # noqa: F401
