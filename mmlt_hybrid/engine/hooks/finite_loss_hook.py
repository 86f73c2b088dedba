"""Stop training at the first non-finite loss; never save non-finite
weights."""
import math

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS

_SWITCH = 'default_hooks.finite_loss.enable=False'


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
    """

    priority = 'HIGH'

    def __init__(self, enable: bool = True):
        if not isinstance(enable, bool):
            raise TypeError(f'FiniteLossHook: enable={enable!r} must be True '
                            'or False.')
        self.enable = enable

    @staticmethod
    def _where(runner, batch_idx: int) -> str:
        """The step in the log's terms (counted from 1)."""
        step = f'iteration {runner.iter + 1} of the run'
        if isinstance(getattr(runner, 'train_loop', None),
                      IterBasedTrainLoop):
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
                f'FiniteLossHook: non-finite loss at '
                f'{self._where(runner, batch_idx)}: {terms}. Training '
                'stopped before any checkpoint of these weights was saved; '
                'the latest checkpoint is the last good one. Lower the '
                'learning rate (optim_wrapper.optimizer.lr), clip the '
                'gradients (optim_wrapper.clip_grad=dict(max_norm=...)) or '
                f'check the data; {_SWITCH} trains on regardless.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a checkpoint whose parameters are not all finite.

        Raises:
            FloatingPointError: Naming the epoch/iteration and parameters.
        """
        if not self.enable:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        state = checkpoint['state_dict']
        bad = [
            name for name, _ in model.named_parameters()
            if name in state and not state[name].isfinite().all()
        ]
        if bad:
            meta = checkpoint.get('meta', {})
            raise FloatingPointError(
                f'FiniteLossHook: after epoch {meta.get("epoch")} '
                f'(iteration {meta.get("iter")} of the run) the weights are '
                f'non-finite in {len(bad)} parameter(s), e.g. {bad[:5]}; '
                'the checkpoint was not saved, so the latest checkpoint is '
                'the last good one. Lower the learning rate '
                '(optim_wrapper.optimizer.lr) or clip the gradients; '
                f'{_SWITCH} trains on regardless.')


__all__ = ['FiniteLossHook']
