"""Sets the loss weight alpha of a hybrid network during training."""
import logging
import math
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS

from ...datasets.long_tailed import labels_of
from ...models.losses.supcon_loss import SupConLoss

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
    """

    priority = 'NORMAL'

    def __init__(self,
                 schedule: str = 'parabolic',
                 by_epoch: bool = True,
                 switch_epoch: Optional[int] = None,
                 switch_iter: Optional[int] = None,
                 value: Optional[float] = None):
        if schedule not in SCHEDULES:
            raise ValueError(
                f'HybridTransitionHook: schedule={schedule!r} is unknown; '
                f'choose from {SCHEDULES}.')
        if not isinstance(by_epoch, bool):
            raise TypeError(f'HybridTransitionHook: by_epoch={by_epoch!r} '
                            'must be True or False.')
        self.schedule = schedule
        self.by_epoch = by_epoch

        unit = 'epoch' if by_epoch else 'iter'
        other_unit = 'iter' if by_epoch else 'epoch'
        switch = switch_epoch if by_epoch else switch_iter
        other = switch_iter if by_epoch else switch_epoch
        if other is not None:
            raise ValueError(
                f'HybridTransitionHook: switch_{other_unit}={other!r} is '
                f'not used with by_epoch={by_epoch}; give '
                f'switch_{unit} instead.')
        if schedule == 'step':
            if (switch is None or isinstance(switch, bool)
                    or not isinstance(switch, int) or switch < 0):
                raise ValueError(
                    f"HybridTransitionHook: schedule='step' with by_epoch="
                    f'{by_epoch} needs switch_{unit} (an integer >= 0, the '
                    f'{unit} counted from 0 from which alpha is 0), got '
                    f'{switch!r}.')
        elif switch is not None:
            raise ValueError(
                f'HybridTransitionHook: switch_{unit}={switch!r} is only used '
                f"by schedule='step', not {schedule!r}.")
        self.switch = switch

        if schedule == 'constant':
            if (value is None or isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not 0.0 <= value <= 1.0):
                raise ValueError(
                    "HybridTransitionHook: schedule='constant' needs value "
                    f'(a number in [0, 1]), got {value!r}.')
            value = float(value)
        elif value is not None:
            raise ValueError(
                f'HybridTransitionHook: value={value!r} is only used by '
                f"schedule='constant', not {schedule!r}.")
        self.value = value

    def alpha_at(self, step: int, total: int) -> float:
        """alpha of the schedule at step ``step`` (from 0) of ``total``.

        Args:
            step: The current epoch (or iteration), counted from 0.
            total: The number of epochs (or iterations), > 0.

        Returns:
            float: alpha in [0, 1].
        """
        if total <= 0:
            raise ValueError(
                f'HybridTransitionHook: the number of training '
                f'{"epochs" if self.by_epoch else "iterations"} is {total}; '
                'it must be > 0.')
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

    @staticmethod
    def _unwrap(model):
        """The model inside DDP (or any mmengine model wrapper)."""
        while is_model_wrapper(model):
            model = model.module
        return model

    def _current_alpha(self, runner) -> float:
        """alpha for the runner's current epoch or iteration."""
        if self.by_epoch:
            return self.alpha_at(runner.epoch, runner.max_epochs)
        return self.alpha_at(runner.iter, runner.max_iters)

    def _set_alpha(self, runner) -> float:
        """Compute alpha and set it on the (unwrapped) model."""
        alpha = self._current_alpha(runner)
        self._unwrap(runner.model).alpha = alpha
        return alpha

    def _check_classifier_weight(self, runner) -> None:
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
    def _check_feature_rows(model, loader) -> None:
        """Refuse a SupConLoss given fewer than 3 rows per step."""
        loss = getattr(getattr(model, 'feat_head', None), 'loss_module', None)
        batch_size = getattr(loader, 'batch_size', None)
        if not isinstance(loss, SupConLoss) or not batch_size:
            return
        world = get_world_size() if loss.gather_distributed else 1
        if batch_size * world >= 3:
            return
        views = getattr(model.data_preprocessor, 'num_views', None)
        if views is None:  # as many as the data gives (a one-off look)
            inputs = loader.dataset[0]['inputs']
            inputs = inputs['views'] if isinstance(inputs, dict) else inputs
            views = len(inputs) if isinstance(inputs, (list, tuple)) else 1
        rows = batch_size * views * world
        if rows < 3:
            raise ValueError(
                'HybridTransitionHook: the SupConLoss of feat_head gets '
                f'{rows} row(s) per step (train_dataloader.batch_size='
                f'{batch_size} per process x {views} view(s) of each image'
                f' x {world} process(es)). Below 3 rows SupCon is 0 at every '
                'step (one row has no positive; two rows are a positive '
                'pair with nothing else to contrast, or no pair), so '
                'loss_feat would stay 0 for the whole run. Raise '
                'train_dataloader.batch_size or the views per image '
                '(data_preprocessor.num_views) to give at least 3 rows.')

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
        model = self._unwrap(runner.model)
        if not hasattr(model, 'alpha'):
            raise TypeError(
                'HybridTransitionHook: the model '
                f'{type(model).__name__} has no attribute `alpha`; the hook '
                'is meant for HybridClassifier (or a model that weights its '
                'losses by `alpha`).')
        if self.by_epoch and isinstance(
                getattr(runner, 'train_loop', None), IterBasedTrainLoop):
            raise ValueError(
                'HybridTransitionHook: by_epoch=True but the training loop '
                'is iteration based (IterBasedTrainLoop); set '
                'by_epoch=False so alpha follows the iterations.')
        self._check_classifier_weight(runner)
        loader = getattr(runner, 'train_dataloader', None)
        self._check_feature_rows(model, loader)
        # The labels are checked here, once, instead of in every step (which
        # would read them back from the device).
        if hasattr(model, 'check_train_labels'):
            model.check_train_labels(
                labels_of(runner.train_dataloader.dataset))

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
