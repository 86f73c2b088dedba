"""Carry the global random generators' states across a resume."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

#: The top-level key of the states in a checkpoint.
RNG_STATES_KEY = 'global_rng_states'


def global_rng_states() -> dict:
    """The states of Python's, numpy's and torch's global generators (and
    CUDA's, once initialised), as tensors, ints, floats and None only, so
    torch's weights-only loader reads them back."""
    version, internal, gauss_next = random.getstate()
    _, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states = dict(
        world_size=get_world_size(),
        python=dict(
            version=version,
            internal=torch.tensor(internal, dtype=torch.int64),
            gauss_next=gauss_next),
        numpy=dict(
            key=torch.from_numpy(key.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_global_rng_states(states: dict) -> None:
    """Put the global generators into ``states`` (of
    :func:`global_rng_states`; CUDA's only where there are as many devices
    as when they were taken)."""
    python = states['python']
    random.setstate((python['version'], tuple(python['internal'].tolist()),
                     python['gauss_next']))
    numpy = states['numpy']
    np.random.set_state(
        ('MT19937', numpy['key'].cpu().numpy().astype(np.uint32), numpy['pos'],
         numpy['has_gauss'], numpy['cached_gaussian']))
    torch.set_rng_state(states['torch'].cpu())
    cuda = states.get('cuda')
    if cuda and torch.cuda.is_available() and \
            len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda])


@HOOKS.register_module()
class GlobalRngStateHook(Hook):
    """Save the global generators' states in checkpoints; restore them on
    resume.

    mmcv's and mmpretrain's per-sample transforms (``RandomCrop``,
    ``RandomFlip``, ...) draw from numpy's global generator, and layers such
    as dropout from torch's; no checkpoint of mmengine stores their states,
    so a run resumed with ``num_workers=0`` drew other augmentations than
    the uninterrupted run. This hook stores the states of Python's
    ``random``, numpy's, torch's CPU and (once initialised) CUDA's global
    generators under ``checkpoint['global_rng_states']`` (tensors and
    numbers, read by torch's weights-only loader), and a resumed run starts
    the next epoch from them.

    The states are put in place at the start of the next epoch, not when
    the checkpoint is loaded: between the two a resumed run re-seeds
    (mmengine's ``Runner.resume``) and runs ``before_train`` hooks, and the
    uninterrupted run validates; so the uninterrupted run, too, starts the
    epoch after an epoch-end checkpoint from the states it saved. Exact for
    epoch-based loops in one process with ``num_workers=0`` or
    non-persistent workers (whose generators mmengine's ``worker_init_fn``
    seeds from the run's seed every epoch). Persistent workers keep their
    generators in the worker processes, which no checkpoint reaches. Under
    several processes only rank 0 saves, so nothing is restored (a warning
    says so).
    """

    priority = 'LOWEST'  # put the states in place after every other hook

    def __init__(self) -> None:
        #: The states the next training epoch starts from, if any.
        self._next: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the states the next epoch starts from; at the end of an
        epoch (not a mid-epoch or a best checkpoint) also keep them for
        that epoch."""
        states = self._next if self._next is not None \
            else global_rng_states()
        checkpoint[RNG_STATES_KEY] = states
        meta = checkpoint.get('meta') or {}
        at_epoch_end = (
            meta.get('epoch') == runner.epoch + 1
            and meta.get('iter') == runner.iter)
        if at_epoch_end and states['world_size'] == 1:
            self._next = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """When resuming, keep the checkpoint's states for the next epoch."""
        if not getattr(runner, '_resume', False):
            return  # load_from: weights only, the run starts afresh
        states = checkpoint.get(RNG_STATES_KEY)
        if states is None:
            runner.logger.warning(
                'Resume: the checkpoint holds no global generator states '
                f"(no '{RNG_STATES_KEY}'; written before they were saved), "
                'so random draws from Python\'s, numpy\'s or torch\'s global '
                'generators (e.g. mmcv\'s per-sample transforms with '
                'num_workers=0) differ from the uninterrupted run.')
        elif states['world_size'] != 1 or get_world_size() != 1:
            runner.logger.warning(
                'Resume: the global generator states are restored in '
                'one-process runs only (the checkpoint was written by '
                f"{states['world_size']} process(es), this run has "
                f'{get_world_size()}; only rank 0 saves its states), so '
                'random draws from the global generators differ from the '
                'uninterrupted run.')
        else:
            self._next = states

    def before_train_epoch(self, runner) -> None:
        """Start the epoch from the kept states, if any."""
        if self._next is not None:
            set_global_rng_states(self._next)
            self._next = None


__all__ = ['GlobalRngStateHook', 'global_rng_states', 'set_global_rng_states']
