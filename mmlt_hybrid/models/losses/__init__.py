"""Registered components; each module below registers on import."""
from .balanced_contrastive_loss import (  # noqa: F401
    BalancedContrastiveLoss)
from .gather import all_gather_with_grad, global_mean  # noqa: F401
from .logit_adjusted_loss import (  # noqa: F401
    BalancedSoftmaxLoss, ClassPriorMixin, LogitAdjustedLoss)
from .psc_loss import PSCLoss  # noqa: F401
from .supcon_loss import SupConLoss  # noqa: F401
