"""Seeded randomness that a resumed run draws again exactly.

The package's own draws never rely on a global generator's state (Python's
``random``, numpy's, torch's; ``GlobalRngStateHook`` saves those states for
stock mmpretrain parts, in one process only): whatever draws inside a step is
seeded from what the runner restores: the run's seed, the epoch and the
iteration (mmengine's ``RuntimeInfoHook`` writes all three to the message hub
before every iteration), plus the rank and the name of the consumer, so that
two ranks or two consumers never share a stream. :func:`derive_seed` makes
every seed of the package from such numbers and :func:`seeded_global_rng`
seeds the global generators; changing either changes what existing
checkpoints resume into.
"""
import random
import zlib
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub

_GENERATORS: Dict[Tuple[str, str], torch.Generator] = {}


def derive_seed(entropy: Sequence[int], bits: int) -> int:
    """A ``bits``-bit seed hashed from ``entropy`` by numpy's SeedSequence.

    Two 32-bit words ``s0, s1`` of ``SeedSequence(entropy)`` make the seed
    ``(s0 << (bits - 32)) ^ s1``; inputs that differ in any entry give
    well-separated streams (unlike ``seed + epoch``). Every entry is taken
    modulo ``2**64`` first, since SeedSequence takes no negative entropy.

    Args:
        entropy (Sequence[int]): The numbers the seed is a function of, e.g.
            ``(seed, epoch, rank)``.
        bits (int): Width of the seed, 32 to 64 (63 fits torch's signed
            seeds, 64 its unsigned ones).

    Returns:
        int: The seed, ``0 <= seed < 2**bits``.

    Raises:
        ValueError: If ``bits`` is not an int from 32 to 64.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or \
            not 32 <= bits <= 64:
        raise ValueError(f'bits must be an int from 32 to 64, got {bits!r}')
    words = np.random.SeedSequence([int(e) % 2**64 for e in entropy
                                    ]).generate_state(2, np.uint32)
    return (int(words[0]) << (bits - 32)) ^ int(words[1])


@contextmanager
def seeded_global_rng(seed: int, restore: bool = True) -> Iterator[None]:
    """Seed Python's, numpy's and torch's CPU global generators with ``seed``
    while the block runs.

    For code that draws from the global generators and takes no generator
    argument (mmcv's and mmpretrain's transforms, ``Mixup``). numpy gets
    ``seed % 2**32``, the others ``seed``. Draws from a CUDA global
    generator are not covered.

    Args:
        seed (int): The seed, ``0 <= seed < 2**64``.
        restore (bool): Whether to put the generators' states back after
            the block; False leaves them seeded (for a data worker, whose
            generators serve nothing else). Defaults to True.
    """
    if restore:
        states = (random.getstate(), np.random.get_state(),
                  torch.get_rng_state())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if restore:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])


def step_seed(stream: str) -> Optional[int]:
    """The seed (below 2**63) of this training step for consumer ``stream``.

    Args:
        stream (str): The consumer's name, e.g. ``'batch_transforms'``.

    Returns:
        int | None: ``derive_seed((seed, epoch, iteration, rank,
        crc32(stream)), 63)``, read from the message hub (torch's initial
        seed when it holds none); None outside a training loop (no
        iteration on the message hub), where callers use torch's global
        generator.
    """
    hub = MessageHub.get_current_instance()
    iteration = hub.get_info('iter')
    if iteration is None:
        return None
    seed = hub.get_info('seed')
    if seed is None:
        seed = torch.initial_seed()
    rank, _ = get_dist_info()
    return derive_seed((seed, hub.get_info(
        'epoch', 0), iteration, rank, zlib.crc32(stream.encode())), 63)


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
    """:func:`seeded_global_rng` with :func:`step_seed` of ``stream``,
    restoring the generators afterwards.

    For mmpretrain's ``Mixup``, ``CutMix`` and ``RandomBatchAugment``
    (``np.random`` and a CPU ``torch.randperm``). Outside a training loop
    (see :func:`step_seed`) the generators are left as they are.

    Args:
        stream (str): The consumer's name.
    """
    seed = step_seed(stream)
    if seed is None:
        yield
        return
    with seeded_global_rng(seed):
        yield


__all__ = [
    'derive_seed', 'seeded_global_rng', 'step_seed', 'step_generator',
    'step_seeded_global_rng'
]
