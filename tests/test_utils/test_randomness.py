"""derive_seed / seeded_global_rng against independent expectations;
step_seed / step_generator: None outside a training loop; otherwise a
function of (seed, epoch, iter, rank, stream) only."""
import random
import uuid
import zlib
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid import randomness
from mmlt_hybrid.randomness import (
    derive_seed,
    seeded_global_rng,
    step_generator,
    step_seed,
    step_seeded_global_rng,
)


def words(entropy):
    """The two 32-bit words numpy's SeedSequence makes of ``entropy``."""
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int(state[0]), int(state[1])


@pytest.fixture
def hub():
    """A fresh message hub, current for the test and dropped afterwards (the
    hub of an earlier runner may hold an 'iter')."""
    name = f'test_randomness_{uuid.uuid4().hex}'
    instance = MessageHub.get_instance(name)
    assert MessageHub.get_current_instance() is instance
    yield instance
    MessageHub._instance_dict.pop(name, None)


def set_step(hub, seed=3, epoch=1, it=10):
    hub.update_info('seed', seed)
    hub.update_info('epoch', epoch)
    hub.update_info('iter', it)


def draws(generator, n=8):
    return torch.rand(n, generator=generator)


def test_none_without_iter(hub):
    hub.update_info('seed', 3)
    hub.update_info('epoch', 2)  # an epoch alone is not a training step
    assert step_seed('views') is None
    assert step_generator('cpu', 'views') is None


def test_seed_is_a_63_bit_int_and_deterministic(hub):
    set_step(hub)
    seed = step_seed('views')
    assert isinstance(seed, int) and 0 <= seed < 2**63
    assert step_seed('views') == seed
    # Another hub holding the same step gives the same seed.
    other = MessageHub.get_instance(f'test_randomness_{uuid.uuid4().hex}')
    try:
        set_step(other)
        assert MessageHub.get_current_instance() is other
        assert step_seed('views') == seed
    finally:
        MessageHub._instance_dict.pop(other.instance_name)


@pytest.mark.parametrize('change', ['seed', 'epoch', 'iter', 'rank', 'stream'])
def test_any_single_change_gives_another_seed_and_draws(hub, change):
    set_step(hub, seed=3, epoch=1, it=10)
    base_seed = step_seed('views')
    base_draws = draws(step_generator('cpu', 'views'))
    stream, rank = 'views', (0, 1)
    if change in ('seed', 'epoch', 'iter'):
        hub.update_info(change, hub.get_info(change) + 1)
    elif change == 'rank':
        rank = (1, 2)
    else:
        stream = 'balanced'
    with mock.patch.object(randomness, 'get_dist_info', return_value=rank):
        seed = step_seed(stream)
        changed = draws(step_generator('cpu', stream))
    assert seed != base_seed
    assert not torch.equal(changed, base_draws)


def test_rank_is_read_from_the_process_group(hub):
    set_step(hub)
    with mock.patch.object(randomness, 'get_dist_info', return_value=(0, 4)):
        rank0 = step_seed('views')
    assert rank0 == step_seed('views')  # no group: rank 0
    with mock.patch.object(randomness, 'get_dist_info', return_value=(3, 4)):
        assert step_seed('views') != rank0


def test_generator_is_seeded_by_step_seed_and_reseeded_every_call(hub):
    set_step(hub)
    generator = step_generator('cpu', 'views')
    assert isinstance(generator, torch.Generator)
    assert generator.device == torch.device('cpu')
    first = draws(generator)
    expected = draws(torch.Generator().manual_seed(step_seed('views')))
    assert torch.equal(first, expected)
    # Drawing moved the generator on; the next call starts the step again.
    assert not torch.equal(draws(generator), first)
    assert torch.equal(draws(step_generator('cpu', 'views')), first)
    # A later iteration draws something else.
    hub.update_info('iter', 11)
    assert not torch.equal(draws(step_generator('cpu', 'views')), first)


def test_global_generator_untouched(hub):
    set_step(hub)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    draws(step_generator('cpu', 'views'))
    assert torch.equal(torch.get_rng_state(), state)


def test_missing_seed_uses_torch_initial_seed_and_missing_epoch_is_0(hub):
    set_step(hub, seed=1234, epoch=0, it=5)
    reference = step_seed('views')
    other = MessageHub.get_instance(f'test_randomness_{uuid.uuid4().hex}')
    try:
        other.update_info('iter', 5)  # neither 'seed' nor 'epoch'
        assert MessageHub.get_current_instance() is other
        torch.manual_seed(1234)  # torch.initial_seed() is now 1234
        assert step_seed('views') == reference
        torch.manual_seed(4321)
        assert step_seed('views') != reference
    finally:
        MessageHub._instance_dict.pop(other.instance_name)


@pytest.mark.parametrize('entropy',
                         [[0], [3, 1, 0], [3, 1, 10, 2, 77], [2**64 - 1, 5]])
def test_derive_seed_by_hand(entropy):
    s0, s1 = words(entropy)
    assert derive_seed(entropy, 64) == s0 * 2**32 + s1
    assert derive_seed(entropy, 64) == (s0 << 32) | s1  # the samplers' form
    assert derive_seed(entropy, 63) == (s0 * 2**31) ^ s1
    assert derive_seed(tuple(entropy), 63) == derive_seed(entropy, 63)


def test_derive_seed_takes_entries_modulo_2_64():
    assert derive_seed([-1, 4], 64) == derive_seed([2**64 - 1, 4], 64)
    assert derive_seed([3, 2**64 + 4], 63) == derive_seed([3, 4], 63)
    assert derive_seed([np.int64(3), 4], 63) == derive_seed([3, 4], 63)


@pytest.mark.parametrize('bits', [32, 40, 63, 64])
def test_derive_seed_range_and_separation(bits):
    seeds = {
        derive_seed([seed, epoch], bits)
        for seed in range(6)
        for epoch in range(6)
    }
    assert len(seeds) == 36  # seed 0 / epoch 1 is not seed 1 / epoch 0
    assert all(0 <= seed < 2**bits for seed in seeds)
    assert max(seeds) >= 2**(bits - 2)  # the high bits are used


@pytest.mark.parametrize('bits', [31, 65, 0, True, 63.0, '63'])
def test_derive_seed_rejects_bits(bits):
    with pytest.raises(ValueError, match='bits'):
        derive_seed([1], bits)


def global_draws():
    return (random.random(), np.random.rand(3).tolist(), torch.rand(3))


def seeded_draws(seed):
    """What generators freshly seeded with ``seed`` draw first."""
    return (random.Random(seed).random(),
            np.random.RandomState(seed % 2**32).rand(3).tolist(),
            torch.rand(3, generator=torch.Generator().manual_seed(seed)))


def assert_same_draws(a, b):
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def reset_globals():
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)


@pytest.mark.parametrize('seed', [0, 5, 2**32 + 7, 2**62 - 1, 2**64 - 1])
def test_seeded_global_rng_seeds_and_restores(seed):
    reset_globals()
    expected_after = global_draws()
    reset_globals()
    with seeded_global_rng(seed):
        assert_same_draws(global_draws(), seeded_draws(seed))
    assert_same_draws(global_draws(), expected_after)


def test_seeded_global_rng_restores_after_an_error():
    reset_globals()
    expected_after = global_draws()
    reset_globals()
    with pytest.raises(RuntimeError):
        with seeded_global_rng(4):
            global_draws()
            raise RuntimeError
    assert_same_draws(global_draws(), expected_after)


def test_seeded_global_rng_without_restore_leaves_them_seeded():
    reset_globals()
    with seeded_global_rng(9, restore=False):
        pass
    assert_same_draws(global_draws(), seeded_draws(9))


def test_step_seed_by_hand(hub):
    set_step(hub, seed=-3, epoch=2, it=10)
    s0, s1 = words([2**64 - 3, 2, 10, 0, zlib.crc32(b'views')])
    assert step_seed('views') == (s0 << 31) ^ s1


def test_step_seeded_global_rng_is_seeded_global_rng_of_step_seed(hub):
    set_step(hub)
    reset_globals()
    expected_after = global_draws()
    reset_globals()
    with step_seeded_global_rng('batch_augments'):
        inside = global_draws()
    assert_same_draws(inside, seeded_draws(step_seed('batch_augments')))
    assert_same_draws(global_draws(), expected_after)


def test_step_seeded_global_rng_outside_a_loop_touches_nothing(hub):
    reset_globals()
    expected = global_draws()
    reset_globals()
    with step_seeded_global_rng('batch_augments'):
        inside = global_draws()
    assert_same_draws(inside, expected)
