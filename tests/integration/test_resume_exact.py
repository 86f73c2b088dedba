"""A resumed hybrid run equals the uninterrupted one, bit for bit.

Each case trains 4 epochs through tools/train.py with a checkpoint every
epoch, then resumes a second work dir from that run's ``epoch_2.pth`` (the
state an interrupted run leaves behind) to epoch 4. The weights after epoch
4 and every loss logged in epochs 3 and 4 must be equal, not close.

Why equality is real: every random draw of a step is a function of what the
checkpoint restores plus (seed, epoch, iteration, rank):

- batches: ``ClassBalancedPairSampler`` (uniform part shuffled by seed +
  epoch, balanced part and per-pair seeds from a generator of (seed, epoch,
  rank));
- per-sample transforms (mmcv's, drawing from numpy's global generator):
  ``HybridPairDataset`` seeds them with the sampler's per-pair seed, in a
  worker or in the main process alike;
- batch transforms on the device and PSC's sampled negatives: generators of
  (seed, epoch, iteration, rank, consumer) (``step_generator``);
- mmpretrain's Mixup / CutMix as ``batch_augments``: numpy's and torch's
  global generators seeded the same way for the call
  (``step_seeded_global_rng``).

Before these, a per-sample run with ``num_workers=0`` or persistent workers
did not resume exactly (its augmentation drew from a generator no checkpoint
stores), and neither would the sampled negatives; these cases are the ones
tested.
"""
import pytest
import torch
from conftest import make_image_folder
from tool_runner import REPO_ROOT, python_tool, run, scalars

import mmlt_hybrid  # noqa: F401  (safe globals for torch.load below)

CONFIGS = REPO_ROOT / 'tests' / 'configs'
SHIPPED = CONFIGS / 'tiny_hybrid_cifar10lt_folder.py'
PER_SAMPLE = CONFIGS / 'tiny_hybrid_cifar10lt_per_sample.py'
STRONG_MIX = CONFIGS / 'tiny_hybrid_cifar10lt_strong_mix.py'

# 10 classes of 24 images cut at IF 10: 24 18 14 11 8 6 4 3 3 2 = 93 images,
# 12 iterations of 8 an epoch (the sampler pads to whole batches).
CASES = {
    'shipped': (SHIPPED, []),
    'per_sample_no_workers': (PER_SAMPLE, [
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ]),
    'per_sample_persistent_workers': (PER_SAMPLE, [
        'train_dataloader.num_workers=2',
        'train_dataloader.persistent_workers=True'
    ]),
    # SupConHead -> PSCHead with 3 of the 9 negative prototypes sampled.
    'psc_sampled_negatives': (SHIPPED, [
        'model.feat_head.type=PSCHead', 'model.feat_head.num_classes=10',
        'model.feat_head.loss.type=PSCLoss',
        'model.feat_head.loss.num_negatives=3'
    ]),
    # RandAugment + Cutout on the device, Mixup / CutMix (mmpretrain's,
    # drawing from the global generators) on the balanced images.
    'strong_recipe_mix': (STRONG_MIX, []),
}


@pytest.fixture(scope='session')  # generated files, cheap
def lt_folder(tmp_path_factory):
    return make_image_folder(
        tmp_path_factory.mktemp('resume_lt'), [24] * 10, test_per_class=2)


def _options(folder, extra):
    return [
        f'train_dataloader.dataset.dataset.dataset.data_root={folder}',
        f'val_dataloader.dataset.data_root={folder}',
        f'test_dataloader.dataset.data_root={folder}',
        'train_dataloader.dataset.dataset.imbalance_factor=10',
        'train_dataloader.batch_size=8',
        'model.backbone.depth=8',
        'train_cfg.max_epochs=4',
        'train_cfg.val_interval=10',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',
        'randomness.seed=0',
        *extra,
    ]


def _late_losses(work_dir):
    """(iter, loss, loss_feat, loss_cls) of every iteration of epochs 3-4."""
    return [(r['iter'], r['loss'], r['loss_feat'], r['loss_cls'])
            for r in scalars(work_dir)
            if r.get('epoch', 0) >= 3 and 'loss' in r]


@pytest.mark.parametrize('case', list(CASES))
def test_resume_is_bit_exact(case, lt_folder, tmp_path):
    config, extra = CASES[case]
    options = _options(lt_folder, extra)
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    run(
        python_tool('train.py', config, '--work-dir', full, '--cfg-options',
                    *options))
    # the resume in a real process of its own (another hash seed, nothing
    # imported before): what a user's second invocation is
    out = run(
        python_tool('train.py', config, '--work-dir', resumed, '--resume',
                    full / 'epoch_2.pth', '--cfg-options', *options),
        fresh=True)
    assert 'resumed epoch: 2, iter: 24' in out.stdout + out.stderr

    losses_full, losses_resumed = _late_losses(full), _late_losses(resumed)
    assert [r[0] for r in losses_full] == list(range(25, 49))
    assert losses_resumed == losses_full  # exact float equality

    weights = {
        name: torch.load(path / 'epoch_4.pth',
                         map_location='cpu')['state_dict']
        for name, path in (('full', full), ('resumed', resumed))
    }
    assert weights['full'].keys() == weights['resumed'].keys()
    for key, value in weights['full'].items():
        assert torch.equal(value, weights['resumed'][key]), key
    # Epochs 3-4 did train: the weights moved from epoch 2's.
    epoch2 = torch.load(full / 'epoch_2.pth', map_location='cpu')['state_dict']
    assert not torch.equal(epoch2['head.fc.weight'],
                           weights['full']['head.fc.weight'])
