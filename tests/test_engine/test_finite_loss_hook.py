"""FiniteLossHook: a run stops at the first non-finite loss (or before
saving non-finite weights), the last good checkpoint stays the latest, the
switch turns it off, and a finite run is left exactly as it was."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import NoReadBack
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS
from tool_runner import REPO_ROOT, python_tool, run, scalars

import mmlt_hybrid  # noqa: F401  (registers the components)

NAN = float('nan')


class NanGrad(torch.autograd.Function):
    """Identity forward, NaN gradient: a finite loss whose update makes the
    weights non-finite."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * NAN


class TwoTerms(BaseModel):
    """Two loss terms of one weight; step k (counted from 0 over the run)
    can give a NaN ``loss_b`` (``nan_loss_at``) or a finite loss with a NaN
    gradient (``nan_grad_at``)."""

    def __init__(self, nan_loss_at=(), nan_grad_at=()):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.nan_loss_at, self.nan_grad_at = set(nan_loss_at), set(nan_grad_at)
        self.step = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        w = NanGrad.apply(self.w) if self.step in self.nan_grad_at \
            else self.w
        loss_b = (w * inputs).pow(2).mean()
        if self.step in self.nan_loss_at:
            loss_b = loss_b * NAN
        self.step += 1
        return dict(loss_a=0.5 * w.pow(2).sum(), loss_b=loss_b)


class FourItems(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([0.5 + index]))


def toy_runner(work_dir, model, **hook_args):
    """3 epochs of 2 iterations, a checkpoint every epoch."""
    finite_loss = dict(type='FiniteLossHook', **hook_args)
    return Runner(
        experiment_name=f'finite_{Path(work_dir).name}',
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=FourItems(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1),
            finite_loss=finite_loss),
        log_processor=dict(window_size=1),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')


def latest_checkpoint(work_dir):
    """The file name ``last_checkpoint`` points to (None without one)."""
    pointer = Path(work_dir) / 'last_checkpoint'
    return Path(pointer.read_text().strip()).name if pointer.exists() \
        else None


def test_stops_at_the_first_nan_loss_naming_epoch_iteration_and_term(tmp_path):
    # Step 3 of the run = epoch 2, iteration 2 of 2 (global iteration 4).
    runner = toy_runner(tmp_path, TwoTerms(nan_loss_at={3}))
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    message = str(info.value)
    assert 'epoch 2' in message and 'iteration 2/2' in message
    assert 'iteration 4 of the run' in message
    assert 'loss_b=nan' in message and 'loss_a' not in message
    assert 'default_hooks.finite_loss.enable=False' in message
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert latest_checkpoint(tmp_path) == 'epoch_1.pth'
    saved = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    assert torch.isfinite(saved['state_dict']['w']).all()


def test_switched_off_the_run_goes_on(tmp_path):
    runner = toy_runner(tmp_path, TwoTerms(nan_loss_at={3}), enable=False)
    runner.train()
    assert latest_checkpoint(tmp_path) == 'epoch_3.pth'
    logged = [r['loss_b'] for r in scalars(tmp_path) if 'loss_b' in r]
    assert len(logged) == 6
    assert all(math.isfinite(v) for v in logged[:3])
    assert all(math.isnan(v) for v in logged[3:])  # NaN weights from step 3


def test_non_finite_weights_are_never_saved(tmp_path):
    # Step 3 (the last of epoch 2) has a finite loss but leaves NaN weights:
    # the epoch-2 checkpoint would hold them.
    runner = toy_runner(tmp_path, TwoTerms(nan_grad_at={3}))
    with pytest.raises(
            FloatingPointError, match=r'(?s)after epoch 2.*non-finite.*\bw\b'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert latest_checkpoint(tmp_path) == 'epoch_1.pth'


def test_a_finite_run_is_untouched(tmp_path):
    results = {}
    for enable in (True, False):
        work_dir = tmp_path / f'enable_{enable}'
        runner = toy_runner(work_dir, TwoTerms(), enable=enable)
        runner.train()
        losses = [(r['loss_a'], r['loss_b']) for r in scalars(work_dir)
                  if 'loss_a' in r]
        results[enable] = (runner.model.w.detach().clone(), losses)
    assert torch.equal(results[True][0], results[False][0])
    assert results[True][1] == results[False][1]
    assert len(results[True][1]) == 6
    # SGD on 0.5 w^2 + mean((w x)^2) really moved the weight.
    assert results[True][0].item() < 1.0


def test_reads_the_logged_values_not_the_tensors():
    """The check uses the floats RuntimeInfoHook put in the message hub: no
    tensor is read back to the host by the hook."""
    hook = HOOKS.build(dict(type='FiniteLossHook'))
    hub = MessageHub.get_instance('finite_loss_no_read_back')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss_feat', 1.0)
    hub.update_scalar('train/loss_cls', 0.5)
    runner = type('R', (), dict(message_hub=hub, epoch=0, iter=0))()
    outputs = dict(
        loss=torch.tensor(1.5),
        loss_feat=torch.tensor(1.0),
        loss_cls=torch.tensor(0.5))
    with NoReadBack():
        hook.after_train_iter(runner, 0, None, outputs)
    # The hub, not the tensors, decides: a NaN recorded there stops the run.
    hub.update_scalar('train/loss_cls', NAN)
    with NoReadBack(), pytest.raises(FloatingPointError, match='loss_cls'):
        hook.after_train_iter(runner, 0, None, outputs)


def test_runs_after_runtime_info_hook_and_before_checkpointing(tmp_path):
    runner = toy_runner(tmp_path, TwoTerms())
    names = [type(hook).__name__ for hook in runner.hooks]
    assert names.index('RuntimeInfoHook') < names.index('FiniteLossHook') \
        < names.index('LoggerHook') < names.index('CheckpointHook')


def test_on_in_the_shipped_runtime():
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs' / '_base_' / 'default_runtime.py'))
    assert cfg.default_hooks.finite_loss == dict(type='FiniteLossHook')


def test_quick_start_with_a_huge_lr_stops_at_the_first_nan(tmp_path):
    """The quick start (shrunk: 6 iterations an epoch) with lr x 1e7 from
    epoch 2: the loss is finite up to epoch 2, iteration 4 and NaN at
    iteration 5. The run stops there with exit status != 0 and keeps the
    epoch-1 checkpoint as the latest."""
    result = run(
        python_tool('train.py',
                    REPO_ROOT / 'tests' / 'configs' / 'tiny_hybrid_sc.py',
                    '--work-dir', tmp_path, '--cfg-options',
                    'train_cfg.max_epochs=2', 'param_scheduler.milestones=[1]',
                    'param_scheduler.gamma=1e7'),
        check=False)
    assert result.returncode != 0
    assert 'FloatingPointError' in result.stderr
    assert 'epoch 2, iteration 5/6' in result.stderr
    assert 'loss_feat=nan' in result.stderr
    assert 'loss_cls=nan' in result.stderr
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert latest_checkpoint(tmp_path) == 'epoch_1.pth'
    logged = [r['loss'] for r in scalars(tmp_path) if 'loss' in r]
    assert len(logged) == 10  # iterations 1 ... 10; the 11th stopped it
    assert all(math.isfinite(v) for v in logged)
