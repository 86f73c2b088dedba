"""Projection head trained with the supervised contrastive loss."""
from mmpretrain.registry import MODELS

from .projection_head import ProjectionHead


@MODELS.register_module()
class SupConHead(ProjectionHead):
    """Feature head: projection MLP + L2 normalisation + SupCon loss.

    The projection is ``Linear(in, hid) -> ReLU -> Linear(hid, out)`` (the
    SupCon reference; ``with_bn=True`` adds BatchNorm1d after the hidden
    layer), followed by L2 normalisation. :meth:`loss` takes feature rows
    and one label (or data sample) per row: the views of an image are simply
    more rows with its label, laid out by the caller. Usable on its own,
    e.g. as an extra loss head in another model.

    Args:
        loss: Config of the loss. Defaults to
            ``dict(type='SupConLoss', temperature=0.1)``.
        **kwargs: ``in_channels`` (the backbone feature's width, default
            64), ``hid_channels`` (None: ``in_channels``), ``out_channels``
            (the embedding's width, default 128), ``with_bn`` (default
            False) and ``init_cfg`` of :class:`ProjectionHead`.
    """

    def __init__(self,
                 loss: dict = dict(type='SupConLoss', temperature=0.1),
                 **kwargs):
        super().__init__(loss=loss, **kwargs)
