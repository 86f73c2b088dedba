"""Registered components; each module below registers on import."""
from .bcl_head import BCLHead  # noqa: F401
from .logit_adjusted_head import LogitAdjustedLinearClsHead  # noqa: F401
from .projection_head import ProjectionHead  # noqa: F401
from .psc_head import PSCHead  # noqa: F401
from .supcon_head import SupConHead  # noqa: F401
