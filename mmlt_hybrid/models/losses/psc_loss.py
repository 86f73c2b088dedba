"""Prototypical supervised contrastive loss (Wang et al., CVPR 2021)."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from ...randomness import step_generator
from ...validation import check_choice, check_int, check_number
from .gather import global_mean
from .utils import check_features_labels, log_sum_exp, loss_dtype

DENOMINATORS = ('negatives', 'all')


@MODELS.register_module()
class PSCLoss(nn.Module):
    """Prototypical supervised contrastive loss.

    Every row ``z_i`` (every view) is pulled towards the prototype of its
    class and pushed from the other prototypes:

    .. math::

        l_i = -\\log \\frac{\\exp(z_i \\cdot p_{y_i} / \\tau)}
                          {\\sum_{j \\ne y_i} \\exp(z_i \\cdot p_j / \\tau)}

    and the loss is the mean of ``l_i`` over the rows. With
    ``denominator='negatives'`` (the published form, default) the sum runs
    over the C - 1 negative prototypes; with ``denominator='all'`` it also
    holds the positive, i.e. the usual softmax cross-entropy over
    ``z_i . p_j / tau``. The log-sum-exp subtracts the row maximum. Memory is
    O(M * C): there is no pairwise matrix between rows.

    With ``num_negatives=K`` each row uses K negatives drawn uniformly without
    replacement from its C - 1 negatives (fresh draws every training step,
    repeated exactly by a resumed run; see :meth:`sample_negatives`), for
    very many classes. Labels must lie in ``[0, C)``; they are not read back
    to the host to check that.

    Multi-process training: under a process group of W > 1 processes the
    mean runs over the rows of all ranks (:func:`global_mean`, one
    all-reduce of two numbers, so every rank must call the loss). Every rank
    returns the global loss as the value, and a gradient that, after DDP
    averages gradients over the ranks, equals that of one process given all
    the rows, also when the ranks hold different numbers of rows (or none).

    Args:
        temperature: tau, a finite number > 0. Defaults to 0.1 (the paper
            uses 0.1 on CIFAR-100 and 1.0 on CIFAR-10).
        denominator: ``'negatives'`` or ``'all'``. Defaults to
            ``'negatives'``.
        num_negatives: K sampled negatives per row (1 <= K <= C - 1), or
            None for all of them. Defaults to None.
        loss_weight: Factor on the loss, a finite number. Defaults to 1.0.

    Raises:
        ValueError: At construction for a setting out of its range; in
            :meth:`forward` for inputs of the wrong shape or dtype, or fewer
            than ``max(2, K + 1)`` prototypes.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 denominator: str = 'negatives',
                 num_negatives: Optional[int] = None,
                 loss_weight: float = 1.0):
        super().__init__()
        owner = 'PSCLoss'
        self.temperature = check_number(
            owner, 'temperature', temperature, low=0, low_open=True)
        self.denominator = check_choice(owner, 'denominator', denominator,
                                        DENOMINATORS)
        self.num_negatives = check_int(
            owner, 'num_negatives', num_negatives, optional=True)
        self.loss_weight = check_number(owner, 'loss_weight', loss_weight)

    @staticmethod
    def sample_negatives(labels: torch.Tensor, num_classes: int,
                         num_negatives: int) -> torch.Tensor:
        """Draw ``num_negatives`` distinct negative classes for every row.

        Inside a training loop the draws come from the generator of the
        step (:func:`step_generator`, seeded by seed, epoch, iteration and
        rank), so a resumed run draws what the uninterrupted one drew;
        elsewhere from torch's global generator.

        Args:
            labels: Labels, shape (M,).
            num_classes: C.
            num_negatives: K <= C - 1.

        Returns:
            Tensor: Class indices, shape (M, K); no row holds its own label
            and no index repeats within a row.
        """
        generator = step_generator(labels.device, 'psc_negatives')
        keys = torch.rand(
            labels.shape[0],
            num_classes,
            device=labels.device,
            generator=generator)
        # The positive gets a key above every random key, so it sorts last.
        keys.scatter_(1, labels[:, None], 2.0)
        return keys.argsort(dim=1)[:, :num_negatives]

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                prototypes: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: L2-normalised embeddings, shape (M, d).
            labels: Class of every row, shape (M,), in ``[0, C)``.
            prototypes: L2-normalised class prototypes, shape (C, d).

        Returns:
            Tensor: The scalar loss.
        """
        check_features_labels('PSCLoss', features, labels)
        num_classes = prototypes.shape[0]
        # Shapes only (the loss's one input check): the labels' range is
        # checked before training (ModelDataCheckHook.check_labels).
        if (prototypes.dim() != 2 or prototypes.shape[1] != features.shape[1]
                or num_classes <= (self.num_negatives or 1)):
            raise ValueError(
                f'PSCLoss: prototypes must be (C, d) with d = '
                f'{features.shape[1]} (the feature width) and C >= 2 classes, '
                f'C - 1 >= num_negatives={self.num_negatives} when that is '
                f'set; got prototypes {tuple(prototypes.shape)}.')
        labels = labels.to(features.device).long()
        dtype = loss_dtype(features, prototypes)
        with torch.autocast(device_type=features.device.type, enabled=False):
            logits = features.to(dtype) @ prototypes.to(dtype).t() / \
                self.temperature
            positive = logits.gather(1, labels[:, None])
            if self.num_negatives is not None:
                negatives = self.sample_negatives(labels, num_classes,
                                                  self.num_negatives)
                negative_logits = logits.gather(1, negatives)
            else:
                negative_logits = logits.masked_fill(
                    torch.zeros_like(logits, dtype=torch.bool).scatter_(
                        1, labels[:, None], True), float('-inf'))
            if self.denominator == 'all':
                negative_logits = torch.cat([negative_logits, positive], dim=1)
            # With no rows (possible on one rank) the sum is a zero joined
            # to the graph.
            loss = global_mean((log_sum_exp(negative_logits) - positive).sum(),
                               logits.new_full((), labels.shape[0]))
        return self.loss_weight * loss
