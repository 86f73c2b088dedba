"""Registered components; each module below registers on import."""
from .logit_adjusted_head import LogitAdjustedLinearClsHead  # noqa: F401
from .psc_head import PSCHead  # noqa: F401
from .supcon_head import ProjectionHead, SupConHead  # noqa: F401
