"""Registered components; each module below registers on import."""
from .balanced_contrastive_loss import BalancedContrastiveLoss
from .gather import all_gather_with_grad, global_mean
from .logit_adjusted_loss import (
    BalancedSoftmaxLoss,
    ClassPriorMixin,
    LogitAdjustedLoss,
)
from .psc_loss import PSCLoss
from .supcon_loss import SupConLoss

__all__ = [
    'BalancedContrastiveLoss', 'BalancedSoftmaxLoss', 'ClassPriorMixin',
    'LogitAdjustedLoss', 'PSCLoss', 'SupConLoss', 'all_gather_with_grad',
    'global_mean'
]
