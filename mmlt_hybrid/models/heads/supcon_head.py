"""Projection head trained with the supervised contrastive loss."""
from mmpretrain.registry import MODELS

from .projection_head import ProjectionHead


@MODELS.register_module()
class SupConHead(ProjectionHead):
    """Feature head: projection MLP, L2 normalisation and the supervised
    contrastive loss, one label per feature row (views are more rows with
    their image's label); usable as an extra loss head in any model.

    Args:
        loss: Config of the loss. Defaults to
            ``dict(type='SupConLoss', temperature=0.1)``.
        **kwargs: The arguments of :class:`ProjectionHead`.
    """

    def __init__(self,
                 loss: dict = dict(type='SupConLoss', temperature=0.1),
                 **kwargs):
        super().__init__(loss=loss, **kwargs)
