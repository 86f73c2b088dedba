"""HybridTransitionHook: schedules, per-iteration mode, wrapped models,
logging and resume."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.engine.hooks import HybridTransitionHook

# Hand-computed alphas for 4 epochs, T = 0, 1, 2, 3.
EXPECTED_4_EPOCHS = {
    'parabolic': [1.0, 1 - 1 / 16, 1 - 4 / 16, 1 - 9 / 16],  # 1 - (T/4)^2
    'linear': [1.0, 0.75, 0.5, 0.25],
    'cosine': [1.0, (1 + math.sqrt(0.5)) / 2, 0.5, (1 - math.sqrt(0.5)) / 2],
    'step': [1.0, 1.0, 0.0, 0.0],  # switch_epoch=2
    'constant': [0.3, 0.3, 0.3, 0.3],  # value=0.3
}
EXTRA_ARGS = dict(step=dict(switch_epoch=2), constant=dict(value=0.3))


class ToyModel(nn.Module):

    def __init__(self):
        super().__init__()
        self.alpha = None


def fake_runner(model, max_epochs=4, max_iters=8, name='hook_test'):
    return SimpleNamespace(
        model=model,
        epoch=0,
        iter=0,
        max_epochs=max_epochs,
        max_iters=max_iters,
        train_loop=None,
        message_hub=MessageHub.get_instance(name))


def run_epochs(hook, runner, iters_per_epoch=2):
    """Drive the hook like a training loop; return alpha seen per iter."""
    seen = []
    hook.before_train(runner)
    for epoch in range(runner.max_epochs):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for batch_idx in range(iters_per_epoch):
            hook.before_train_iter(runner, batch_idx)
            seen.append(
                runner.model.alpha if hasattr(runner.model, 'alpha'
                                              ) else runner.model.module.alpha)
            runner.iter += 1
    return seen


@pytest.mark.parametrize('schedule', sorted(EXPECTED_4_EPOCHS))
def test_schedules_per_epoch(schedule):
    hook = HOOKS.build(
        dict(
            type='HybridTransitionHook',
            schedule=schedule,
            **EXTRA_ARGS.get(schedule, {})))
    runner = fake_runner(ToyModel(), name=f'sched_{schedule}')
    seen = run_epochs(hook, runner)
    expected = [a for a in EXPECTED_4_EPOCHS[schedule] for _ in range(2)]
    assert seen == pytest.approx(expected, abs=1e-12)
    logged = runner.message_hub.get_scalar('train/alpha').data[0]
    assert list(logged) == pytest.approx(expected, abs=1e-12)


def test_parabolic_is_the_default_and_starts_at_one():
    hook = HybridTransitionHook()
    assert hook.schedule == 'parabolic' and hook.by_epoch
    for total in (1, 7, 200):
        assert hook.alpha_at(0, total) == 1.0
        for t in range(total):
            assert hook.alpha_at(t, total) == pytest.approx(1 - (t / total)**2)


def test_per_iteration():
    hook = HybridTransitionHook(by_epoch=False)
    runner = fake_runner(
        ToyModel(), max_epochs=4, max_iters=8, name='per_iter')
    seen = run_epochs(hook, runner)
    assert seen == pytest.approx([1 - (i / 8)**2 for i in range(8)])
    step = HybridTransitionHook(schedule='step', by_epoch=False, switch_iter=3)
    runner = fake_runner(ToyModel(), name='per_iter_step')
    assert run_epochs(step, runner) == [1, 1, 1, 0, 0, 0, 0, 0]


def test_wrapped_model():
    inner = ToyModel()
    wrapped = nn.DataParallel(inner)  # an mmengine-registered model wrapper
    hook = HybridTransitionHook()
    runner = fake_runner(wrapped, name='wrapped')
    seen = run_epochs(hook, runner)
    assert inner.alpha == pytest.approx(1 - 9 / 16)
    assert seen[2] == pytest.approx(1 - 1 / 16)
    assert 'alpha' not in vars(wrapped)


def test_same_alpha_from_counters_only():
    # A fresh hook (as after --resume) at epoch 2 gives the uninterrupted
    # run's value: nothing is remembered between calls.
    runner = fake_runner(ToyModel(), name='fresh')
    runner.epoch = 2
    HybridTransitionHook().before_train_epoch(runner)
    assert runner.model.alpha == pytest.approx(0.75)


def test_model_without_alpha():
    runner = fake_runner(nn.Linear(2, 2), name='no_alpha')
    with pytest.raises(TypeError, match='alpha'):
        HybridTransitionHook().before_train(runner)


@pytest.mark.parametrize(
    'kwargs,match', [(dict(schedule='exponential'), 'schedule'),
                     (dict(schedule='step'), 'switch_epoch'),
                     (dict(schedule='step', by_epoch=False), 'switch_iter'),
                     (dict(schedule='step', switch_epoch=-1), 'switch_epoch'),
                     (dict(schedule='step', switch_iter=3), 'switch_iter'),
                     (dict(schedule='linear', switch_epoch=3), 'switch_epoch'),
                     (dict(schedule='constant'), 'value'),
                     (dict(schedule='constant', value=1.5), 'value'),
                     (dict(schedule='parabolic', value=0.5), 'value')])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HOOKS.build(dict(type='HybridTransitionHook', **kwargs))


# --- a tiny mmengine Runner ----------------------------------------------


class AlphaRecorder(BaseModel):
    """Records model.alpha at every training step."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.alpha = None
        self.seen = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            self.seen.append(self.alpha)
            return dict(loss=(self.weight * inputs).pow(2).mean())
        return self.weight * inputs


class TinyDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index)]))


def make_runner(work_dir, max_epochs=4, **kwargs):
    # A distinct experiment name: runners built in the same second would
    # otherwise share mmengine's global visualizer (and its log folder).
    return Runner(
        experiment_name=f'alpha_{Path(work_dir).name}',
        model=AlphaRecorder(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=TinyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        custom_hooks=[dict(type='HybridTransitionHook')],
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        **kwargs)


def logged_alphas(work_dir):
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert files, 'no scalars.json written'
    lines = files[-1].read_text().splitlines()
    return [json.loads(line)['alpha'] for line in lines]


def test_runner_logs_alpha_and_resumes(tmp_path):
    parabolic = [1 - (t / 4)**2 for t in range(4) for _ in range(2)]

    first = make_runner(tmp_path / 'full')
    first.train()
    assert first.model.seen == pytest.approx(parabolic)
    assert logged_alphas(tmp_path / 'full') == pytest.approx(parabolic)

    resumed = make_runner(
        tmp_path / 'resumed',
        load_from=str(tmp_path / 'full' / 'epoch_2.pth'),
        resume=True)
    resumed.train()
    assert resumed.epoch == 4
    # Epochs 2 and 3 again, as in the uninterrupted run.
    assert resumed.model.seen == pytest.approx(parabolic[4:])
    assert logged_alphas(tmp_path / 'resumed') == pytest.approx(parabolic[4:])


class HybridItems(torch.utils.data.Dataset):
    """Items shaped like HybridPairDataset's: 2 views + 1 balanced image."""

    def __len__(self):
        return 4

    def get_gt_labels(self):
        """The labels the hook checks against the heads before training."""
        return np.arange(4) % 2

    def __getitem__(self, index):
        from mmpretrain.structures import DataSample
        images = [
            torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
            for _ in range(3)
        ]
        return dict(
            inputs=dict(views=images[:2], balanced=images[2]),
            data_samples=dict(
                uniform=DataSample().set_gt_label(index % 2),
                balanced=DataSample().set_gt_label((index + 1) % 2)))


def hybrid_runner(work_dir, custom_hooks):
    return Runner(
        experiment_name=f'hybrid_{Path(work_dir).name}',
        model=dict(
            type='HybridClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=64),
            feat_head=dict(type='SupConHead', out_channels=8)),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=HybridItems(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        custom_hooks=custom_hooks,
        default_hooks=dict(
            checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmpretrain')


def test_hybrid_classifier_trains_with_hook_and_fails_without(tmp_path):
    runner = hybrid_runner(tmp_path / 'with_hook',
                           [dict(type='HybridTransitionHook')])
    runner.train()
    assert runner.model.alpha == pytest.approx(0.75)  # epoch 1 of 2
    assert logged_alphas(tmp_path / 'with_hook') == pytest.approx(
        [1.0, 1.0, 0.75, 0.75])

    runner = hybrid_runner(tmp_path / 'without_hook', [])
    with pytest.raises(RuntimeError, match='HybridTransitionHook'):
        runner.train()


def test_iter_based_loop_needs_by_epoch_false(tmp_path):
    runner = Runner(
        experiment_name='iter_based_loop',
        model=AlphaRecorder(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=TinyDataset(),
            sampler=dict(type='InfiniteSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        custom_hooks=[dict(type='HybridTransitionHook')],
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=100, by_epoch=False)),
        default_scope='mmpretrain')
    with pytest.raises(ValueError, match='by_epoch=False'):
        runner.train()
