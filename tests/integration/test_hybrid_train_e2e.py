"""A HybridClassifier trains through tools/train.py with each feature head.

The logged alpha follows the paper's parabola 1 - (T / T_max)^2 (T the epoch
counted from 0) in every epoch, and a run resumed from the epoch-2
checkpoint logs the same alpha in epoch 3 as the uninterrupted run.
"""

import pytest
import torch
from tool_runner import REPO_ROOT, python_tool, run, scalars

import mmlt_hybrid  # noqa: F401  (safe globals for the checkpoint)

CONFIGS = REPO_ROOT / 'tests' / 'configs'
MAX_EPOCHS = 3


def _alpha_by_epoch(records):
    """epoch -> the set of alphas logged in its iterations."""
    out = {}
    for record in records:
        if 'alpha' in record:
            out.setdefault(record['epoch'], set()).add(record['alpha'])
    return out


@pytest.mark.parametrize('head', ['sc', 'psc'])
def test_hybrid_trains_and_alpha_is_parabolic_across_resume(head, tmp_path):
    work_dir = tmp_path / head
    config = CONFIGS / f'tiny_hybrid_{head}.py'
    run(python_tool('train.py', config, '--work-dir', work_dir))

    records = scalars(work_dir)
    alphas = _alpha_by_epoch(records)
    # By hand: T = 0, 1, 2 of T_max = 3 -> 1, 1 - 1/9, 1 - 4/9.
    expected = {1: 1.0, 2: 8 / 9, 3: 5 / 9}
    assert set(alphas) == set(expected)
    for epoch, value in expected.items():
        assert len(alphas[epoch]) == 1  # constant within an epoch
        assert alphas[epoch].pop() == pytest.approx(value, abs=1e-12)
    # Six iterations an epoch (95 images, batch 16), each one logged.
    train = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in train] == list(range(1, 19))
    # The weighted terms add up to the logged total.
    for r in train:
        assert r['loss'] == pytest.approx(
            r['loss_feat'] + r['loss_cls'], rel=1e-5)
    val = [r for r in records if 'long_tail/top1' in r]
    assert len(val) == 1 and 0 <= val[0]['long_tail/top1'] <= 100

    state = torch.load(
        work_dir / 'epoch_3.pth', map_location='cpu',
        weights_only=True)['state_dict']
    if head == 'psc':
        assert state['feat_head.prototypes'].shape == (10, 128)
    assert any(k.startswith('feat_head.') for k in state)

    # Resume the run from its epoch-2 checkpoint: epoch 3 again.
    resumed_dir = tmp_path / f'{head}_resumed'
    run(
        python_tool('train.py', config, '--work-dir', resumed_dir, '--resume',
                    work_dir / 'epoch_2.pth'))
    resumed = _alpha_by_epoch(scalars(resumed_dir))
    assert set(resumed) == {3}
    assert len(resumed[3]) == 1
    assert resumed[3].pop() == pytest.approx(expected[3], abs=1e-12)


def test_default_sampler_is_refused_naming_the_pair_sampler(tmp_path):
    """The issue's command: the quick start with DefaultSampler. Its batches
    have no class-balanced part, so the paper's classifier branch has
    nothing to train on: the run must stop with an error naming the
    sampler and dataset to use, not train on mis-split labels."""
    result = run(
        python_tool(
            'train.py',
            REPO_ROOT / 'configs' / 'quickstart_hybrid_sc_r20_synthetic.py',
            '--work-dir', tmp_path, '--cfg-options',
            'train_dataloader.sampler.type=DefaultSampler',
            'train_dataloader.drop_last=True',
            'train_dataloader.batch_size=8'),
        check=False)
    assert result.returncode != 0
    assert 'no class-balanced part' in result.stderr
    assert 'ClassBalancedPairSampler' in result.stderr
    assert 'HybridPairDataset' in result.stderr
    assert not list(tmp_path.glob('epoch_*.pth'))
