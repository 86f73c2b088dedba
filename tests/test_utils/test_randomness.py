"""step_seed / step_generator: None outside a training loop; otherwise a
function of (seed, epoch, iter, rank, stream) only."""
import uuid
from unittest import mock

import pytest
import torch
from mmengine.logging import MessageHub

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.randomness import step_generator, step_seed
from mmlt_hybrid import randomness as step_rng


@pytest.fixture
def hub():
    """A fresh message hub, current for the test and dropped afterwards (the
    hub of an earlier runner may hold an 'iter')."""
    name = f'test_step_rng_{uuid.uuid4().hex}'
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
    other = MessageHub.get_instance(f'test_step_rng_{uuid.uuid4().hex}')
    try:
        set_step(other)
        assert MessageHub.get_current_instance() is other
        assert step_seed('views') == seed
    finally:
        MessageHub._instance_dict.pop(other.instance_name)


@pytest.mark.parametrize('change', ['seed', 'epoch', 'iter', 'rank',
                                    'stream'])
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
    with mock.patch.object(step_rng, 'get_dist_info', return_value=rank):
        seed = step_seed(stream)
        changed = draws(step_generator('cpu', stream))
    assert seed != base_seed
    assert not torch.equal(changed, base_draws)


def test_rank_is_read_from_the_process_group(hub):
    set_step(hub)
    with mock.patch.object(step_rng, 'get_dist_info', return_value=(0, 4)):
        rank0 = step_seed('views')
    assert rank0 == step_seed('views')  # no group: rank 0
    with mock.patch.object(step_rng, 'get_dist_info', return_value=(3, 4)):
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
    other = MessageHub.get_instance(f'test_step_rng_{uuid.uuid4().hex}')
    try:
        other.update_info('iter', 5)  # neither 'seed' nor 'epoch'
        assert MessageHub.get_current_instance() is other
        torch.manual_seed(1234)  # torch.initial_seed() is now 1234
        assert step_seed('views') == reference
        torch.manual_seed(4321)
        assert step_seed('views') != reference
    finally:
        MessageHub._instance_dict.pop(other.instance_name)
