"""Stop training at the first non-finite loss; never save non-finite
weights."""
import math

from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...validation import check_bool

# What both refusals say next: where the run stands and what to do.
_WHAT_NOW = ('the latest checkpoint is the last good one. Lower the learning '
             'rate (optim_wrapper.optimizer.lr), clip the gradients '
             '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the '
             'data; default_hooks.finite_loss.enable=False trains on '
             'regardless.')


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first NaN or infinite loss.

    After every training iteration the hook reads the loss terms of the step
    (every output whose name contains ``'loss'``: the total ``loss`` and
    terms such as ``loss_feat`` and ``loss_cls``) from the message hub,
    where mmengine's ``RuntimeInfoHook`` (priority ``VERY_HIGH``) has just
    stored each of them as a Python float for logging (``train/<name>``).
    So the check adds no read-back from the device; its priority ``HIGH``
    runs it after ``RuntimeInfoHook`` and before the logger, the parameter
    schedulers and ``CheckpointHook``. At the first non-finite term it
    raises, naming the epoch, the iteration and the terms: the run ends with
    an error, and no checkpoint is written after the weights went bad, so
    the latest checkpoint (``last_checkpoint``) stays the last good one.

    A finite loss can still come with an update that makes the weights
    non-finite (in the last step before a checkpoint); before a checkpoint
    is saved, its parameters (already copied to the CPU by the runner) are
    checked, and a checkpoint with non-finite parameters is refused the
    same way.

    On by default in ``configs/_base_/default_runtime.py`` as
    ``default_hooks.finite_loss``. To train on regardless, set
    ``default_hooks.finite_loss.enable=False`` (setting the entry to None is
    refused by mmengine 0.10.7 for default hooks it does not define).
    Each process checks its own loss; ``torchrun`` ends the run when one
    process fails.

    Args:
        enable (bool): Whether to check. Defaults to True.

    Raises:
        TypeError: If ``enable`` is not a bool.
    """

    priority = 'HIGH'

    def __init__(self, enable: bool = True):
        self.enable = check_bool('FiniteLossHook', 'enable', enable)

    @staticmethod
    def _where(runner, batch_idx: int) -> str:
        """The step in the log's terms (counted from 1)."""
        step = f'iteration {runner.iter + 1} of the run'
        if isinstance(getattr(runner, 'train_loop', None), IterBasedTrainLoop):
            return step
        loader = getattr(runner, 'train_dataloader', None)
        total = f'/{len(loader)}' if loader is not None else ''
        return (f'epoch {runner.epoch + 1}, iteration {batch_idx + 1}'
                f'{total} ({step})')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Raise if a loss term the logger recorded is not finite.

        Raises:
            FloatingPointError: Naming the step and the non-finite terms.
        """
        if not self.enable or not outputs:
            return
        hub = runner.message_hub
        values = {
            key: hub.get_scalar(f'train/{key}').current()
            for key in outputs if 'loss' in key
        }
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            terms = ', '.join(f'{k}={v}' for k, v in bad.items())
            raise FloatingPointError(
                'FiniteLossHook: non-finite loss at '
                f'{self._where(runner, batch_idx)}: {terms}. Stopped before '
                f'any checkpoint of these weights was saved: {_WHAT_NOW}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a checkpoint whose parameters are not all finite.

        Raises:
            FloatingPointError: Naming the epoch/iteration and parameters.
        """
        if not self.enable:
            return
        state = checkpoint['state_dict']
        bad = [
            name for name, _ in get_ori_model(runner.model).named_parameters()
            if name in state and not state[name].isfinite().all()
        ]
        if bad:
            meta = checkpoint.get('meta', {})
            raise FloatingPointError(
                f'FiniteLossHook: after epoch {meta.get("epoch")} (iteration '
                f'{meta.get("iter")} of the run) {len(bad)} parameter(s) are '
                f'non-finite, e.g. {bad[:5]}. Not saved: {_WHAT_NOW}')


__all__ = ['FiniteLossHook']
