"""Sets the loss weight alpha of a hybrid network during training."""
import logging
import math
from typing import Optional, Tuple

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...datasets.utils import labels_of
from ...models.losses.supcon_loss import SupConLoss
from ...validation import check_bool, check_choice, check_int, check_number

SCHEDULES = ('parabolic', 'linear', 'cosine', 'step', 'constant')


@HOOKS.register_module()
class HybridTransitionHook(Hook):
    """Move the hybrid loss from feature learning to classifier learning.

    Before every training epoch (``by_epoch=True``) or iteration
    (``by_epoch=False``) this hook sets ``model.alpha`` (the model is
    unwrapped first when it is a DDP or other model wrapper), the weight of
    the feature loss in ``alpha * L_feat + (1 - alpha) * L_cls``. With
    ``T`` the current epoch counted from 0 (``runner.epoch``) and ``T_max``
    the number of epochs (or ``runner.iter`` and ``runner.max_iters`` when
    ``by_epoch=False``):

    - ``'parabolic'`` (the paper): ``alpha = 1 - (T / T_max) ** 2``, so 1 in
      the first epoch and close to 0 in the last;
    - ``'linear'``: ``1 - T / T_max``;
    - ``'cosine'``: ``(1 + cos(pi * T / T_max)) / 2``;
    - ``'step'``: 1 while ``T < switch_epoch`` (``switch_iter`` when
      ``by_epoch=False``), 0 from then on;
    - ``'constant'``: ``value`` throughout.

    alpha is recorded every iteration as the training scalar ``train/alpha``
    (printed with the log and written to ``vis_data/scalars.json``). It is
    derived from the runner's epoch/iteration counters only, so a run
    resumed from a checkpoint gets the same alpha as an uninterrupted one.

    Before training (:meth:`before_train`) a ``SupConLoss`` feature head
    given fewer than 3 rows per step, whose loss is then 0 at every step, is
    refused, and a schedule whose alpha is 1 in every epoch (iteration) of
    the run, so that the classifier branch never gets any weight (e.g.
    ``'parabolic'`` with ``max_epochs=1``), is warned about (a one-step
    smoke test is such a run).

    Args:
        schedule: One of ``'parabolic'``, ``'linear'``, ``'cosine'``,
            ``'step'``, ``'constant'``. Defaults to ``'parabolic'``.
        by_epoch: Update alpha per epoch (True) or per iteration (False).
            Defaults to True.
        switch_epoch: Epoch (from 0) from which ``'step'`` gives 0; required
            by ``'step'`` with ``by_epoch=True``.
        switch_iter: Iteration (from 0) from which ``'step'`` gives 0;
            required by ``'step'`` with ``by_epoch=False``.
        value: alpha of ``'constant'``, in [0, 1].

    Raises:
        ValueError: If a setting is unknown or out of range, or is given to
            a schedule that does not use it.
        TypeError: If ``by_epoch`` is not a bool.
    """

    priority = 'NORMAL'

    def __init__(self,
                 schedule: str = 'parabolic',
                 by_epoch: bool = True,
                 switch_epoch: Optional[int] = None,
                 switch_iter: Optional[int] = None,
                 value: Optional[float] = None):
        owner = 'HybridTransitionHook'
        self.schedule = check_choice(owner, 'schedule', schedule, SCHEDULES)
        self.by_epoch = check_bool(owner, 'by_epoch', by_epoch)
        switch_key = 'switch_epoch' if by_epoch else 'switch_iter'
        given = dict(switch_epoch=switch_epoch, switch_iter=switch_iter,
                     value=value)
        used = {'step': switch_key, 'constant': 'value'}.get(schedule)
        for key, setting in given.items():
            if setting is not None and key != used:
                raise ValueError(
                    f'{owner}: {key}={setting!r} is not used by schedule='
                    f"{schedule!r} with by_epoch={by_epoch}; 'step' takes "
                    "switch_epoch (switch_iter with by_epoch=False), "
                    "'constant' takes value.")
        self.switch = self.value = None
        if schedule == 'step':
            self.switch = check_int(
                owner, switch_key, given[switch_key], min_value=0)
        elif schedule == 'constant':
            self.value = check_number(owner, 'value', value, 0, 1)

    def alpha_at(self, step: int, total: int) -> float:
        """alpha of the schedule at step ``step`` (from 0) of ``total``.

        Args:
            step: The current epoch (or iteration), counted from 0.
            total: The number of epochs (or iterations), > 0.

        Returns:
            float: alpha in [0, 1].
        """
        ratio = min(max(step / total, 0.0), 1.0)
        if self.schedule == 'parabolic':
            return 1.0 - ratio**2
        if self.schedule == 'linear':
            return 1.0 - ratio
        if self.schedule == 'cosine':
            return 0.5 * (1.0 + math.cos(math.pi * ratio))
        if self.schedule == 'step':
            return 1.0 if step < self.switch else 0.0
        return self.value

    def _current_alpha(self, runner) -> float:
        """alpha for the runner's current epoch or iteration."""
        if self.by_epoch:
            return self.alpha_at(runner.epoch, runner.max_epochs)
        return self.alpha_at(runner.iter, runner.max_iters)

    def _set_alpha(self, runner) -> float:
        """Compute alpha and set it on the (unwrapped) model."""
        alpha = self._current_alpha(runner)
        get_ori_model(runner.model).alpha = alpha
        return alpha

    def _warn_if_alpha_stays_1(self, runner) -> None:
        """Warn when alpha is 1 at every step of the run."""
        unit, key = ('epoch', 'max_epochs') if self.by_epoch else (
            'iteration', 'max_iters')
        total = getattr(runner, key, None)
        # Every schedule is non-increasing: its last value is its smallest.
        if not total or self.alpha_at(total - 1, total) < 1.0:
            return
        print_log(
            f'HybridTransitionHook: schedule={self.schedule!r} gives '
            f'alpha=1.0 in all {total} training {unit}(s) of the run, so '
            'loss_cls = (1 - alpha) * L_cls is always 0 and the classifier, '
            'the branch used for testing, is never trained: it predicts '
            'with its initial weights. Train for more epochs '
            '(train_cfg.max_epochs), set by_epoch=False (alpha then falls '
            'per iteration) or choose a schedule (switch_epoch, value) that '
            'goes below 1 within the run; a smoke test may ignore this.',
            logger='current',
            level=logging.WARNING)

    @staticmethod
    def _supcon_batch(model, loader) -> Optional[Tuple[int, int, int]]:
        """(batch size, views, processes): the factors of the rows that a
        SupConLoss feature head gets per step; None without such a head,
        or when the batch alone gives 3 rows."""
        loss = getattr(getattr(model, 'feat_head', None), 'loss_module', None)
        batch_size = getattr(loader, 'batch_size', None)
        if not isinstance(loss, SupConLoss) or not batch_size:
            return None
        world = get_world_size() if loss.gather_distributed else 1
        if batch_size * world >= 3:
            return None
        views = getattr(model.data_preprocessor, 'num_views', None)
        if views is None:  # as many as the data gives (a one-off look)
            inputs = loader.dataset[0]['inputs']
            inputs = inputs['views'] if isinstance(inputs, dict) else inputs
            views = len(inputs) if isinstance(inputs, (list, tuple)) else 1
        return batch_size, views, world

    def before_train(self, runner) -> None:
        """Check the model, the loop, the feature head's batch and the
        training labels (against the heads' number of classes) before
        training starts; warn when alpha is 1 throughout the run.

        Raises:
            TypeError: If the model has no ``alpha``.
            ValueError: If ``by_epoch=True`` with an iteration-based loop;
                if a ``SupConLoss`` feature head gets fewer than 3 rows per
                step (``train_dataloader.batch_size`` x views x processes);
                if a training label is out of the heads' range.
        """
        model = get_ori_model(runner.model)
        if not hasattr(model, 'alpha'):
            raise TypeError(
                f'HybridTransitionHook: the model {type(model).__name__} has '
                'no attribute alpha; the hook is for HybridClassifier.')
        if self.by_epoch and isinstance(
                getattr(runner, 'train_loop', None), IterBasedTrainLoop):
            raise ValueError('HybridTransitionHook: by_epoch=True is not '
                             'allowed with IterBasedTrainLoop; set '
                             'by_epoch=False.')
        self._warn_if_alpha_stays_1(runner)
        loader = getattr(runner, 'train_dataloader', None)
        supcon = self._supcon_batch(model, loader)
        # Below 3 rows SupCon is 0 at every step: one row has no positive,
        # two are a positive pair with nothing to contrast it with.
        if supcon is not None and math.prod(supcon) < 3:
            raise ValueError(
                'HybridTransitionHook: the SupConLoss of feat_head gets {} '
                'row(s) per step (train_dataloader.batch_size={} per process '
                'x {} view(s) x {} process(es)), so loss_feat would be 0 in '
                'every step; give at least 3: raise train_dataloader.'
                'batch_size or data_preprocessor.num_views.'.format(
                    math.prod(supcon), *supcon))
        # The labels are checked here, once, instead of in every step (which
        # would read them back from the device).
        if hasattr(model, 'check_train_labels'):
            model.check_train_labels(labels_of(loader.dataset))

    def before_train_epoch(self, runner) -> None:
        """Set alpha for this epoch (``by_epoch=True``)."""
        if self.by_epoch:
            self._set_alpha(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Set alpha for this iteration and log it.

        With ``by_epoch=True`` the value is the epoch's (set again, so the
        model holds it even if something changed it in between).
        """
        alpha = self._set_alpha(runner)
        runner.message_hub.update_scalar('train/alpha', alpha)
