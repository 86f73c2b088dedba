"""Random generators that a resumed run draws again exactly.

A draw inside a training step (the batch transforms of the data
preprocessor, the negatives PSC samples) must not come from torch's global
generator: no checkpoint stores its state, so a resumed run would draw
differently from the uninterrupted one. :func:`step_generator` instead seeds
a generator from what the runner restores on resume: the run's seed, the
epoch and the iteration (mmengine's ``RuntimeInfoHook`` writes all three to
the message hub before every iteration), the rank, and the name of the
consumer, so that two consumers never share a stream.
"""
import zlib
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub

_GENERATORS: Dict[Tuple[str, str], torch.Generator] = {}


def step_seed(stream: str) -> Optional[int]:
    """The seed (below 2**63) of this training step for the consumer ``stream``.

    Args:
        stream (str): The consumer's name, e.g. ``'batch_transforms'``.

    Returns:
        int | None: The seed, derived from (seed, epoch, iteration, rank,
        stream); None outside a training loop (no iteration on the message
        hub), where callers use torch's global generator.
    """
    hub = MessageHub.get_current_instance()
    iteration = hub.get_info('iter')
    if iteration is None:
        return None
    seed = hub.get_info('seed')
    if seed is None:
        seed = torch.initial_seed()
    rank, _ = get_dist_info()
    entropy = [
        int(seed) % 2**64,
        int(hub.get_info('epoch', 0)), int(iteration), rank,
        zlib.crc32(stream.encode())
    ]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def step_generator(device: torch.device,
                   stream: str) -> Optional[torch.Generator]:
    """A generator on ``device`` seeded for this step and ``stream``.

    Seeding happens on the host; nothing is read back from the device. One
    generator per (device, stream) is kept and re-seeded every call.

    Args:
        device (torch.device): Where the draws happen.
        stream (str): The consumer's name.

    Returns:
        torch.Generator | None: The generator, or None outside a training
        loop (see :func:`step_seed`).
    """
    seed = step_seed(stream)
    if seed is None:
        return None
    device = torch.device(device)
    key = (str(device), stream)
    generator = _GENERATORS.get(key)
    if generator is None:
        generator = _GENERATORS[key] = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


@contextmanager
def step_seeded_global_rng(stream: str) -> Iterator[None]:
    """Seed numpy's and torch's CPU global generators for this step and
    ``stream`` while the block runs; restore their states afterwards.

    For code that draws from the global generators and takes no generator
    argument, such as mmpretrain's ``Mixup``, ``CutMix`` and
    ``RandomBatchAugment`` (``np.random`` and a CPU ``torch.randperm``).
    Outside a training loop (see :func:`step_seed`) the generators are left
    as they are. Draws from a CUDA global generator are not covered.

    Args:
        stream (str): The consumer's name.
    """
    seed = step_seed(stream)
    if seed is None:
        yield
        return
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


__all__ = ['step_seed', 'step_generator', 'step_seeded_global_rng']
