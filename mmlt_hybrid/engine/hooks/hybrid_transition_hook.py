"""Sets the loss weight alpha of a hybrid network during training."""
import logging
import math
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...validation import check_bool, check_choice, check_int, check_number

SCHEDULES = ('parabolic', 'linear', 'cosine', 'step', 'constant')


@HOOKS.register_module()
class HybridTransitionHook(Hook):
    """Move the hybrid loss from feature learning to classifier learning.

    Sets ``alpha`` of the (unwrapped) model, the weight of the feature loss
    in ``alpha * L_feat + (1 - alpha) * L_cls``, before every epoch
    (``by_epoch=True``) or iteration, from the runner's counters alone (a
    resumed run gets the alpha of the uninterrupted one), logs it as
    ``train/alpha``, and warns before training when alpha stays 1 all run
    (the classifier would never train). With ``r = T / T_max`` (epochs, or
    iterations with ``by_epoch=False``; T from 0) the schedules are
    ``'parabolic'`` (the paper) ``1 - r ** 2``, ``'linear'`` ``1 - r``,
    ``'cosine'`` ``(1 + cos(pi r)) / 2``, ``'step'`` 1 before the switch and
    0 from it, and ``'constant'`` ``value``.

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
        given = dict(
            switch_epoch=switch_epoch, switch_iter=switch_iter, value=value)
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
        unit, key = ('epoch', 'max_epochs') if self.by_epoch else ('iteration',
                                                                   'max_iters')
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

    def before_train(self, runner) -> None:
        """Check that the model has an alpha and the loop fits ``by_epoch``;
        warn when alpha is 1 throughout the run.

        Raises:
            TypeError: If the model has no ``alpha``.
            ValueError: If ``by_epoch=True`` with an iteration-based loop.
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
