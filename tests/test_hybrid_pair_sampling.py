"""ClassBalancedPairSampler + HybridPairDataset: balanced and uniform
branches, ranks, resume, worker processes, batch structure, errors."""
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from torch.utils.data import DataLoader

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import (ClassBalancedPairSampler, HybridPairDataset,
                                  LongTailedDataset)
from mmlt_hybrid.models.utils import HybridDataPreprocessor
from mmpretrain.registry import DATA_SAMPLERS, DATASETS
from mmpretrain.structures import DataSample

# Upper 0.1 % points of the chi-square distribution (standard tables).
CHI2_999 = {9: 27.877}


def chi2_critical_999(dof: int) -> float:
    """Upper 0.1 % point of chi-square(dof), Wilson-Hilferty approximation
    (within 1 % of the tables for dof >= 9)."""
    z = 3.090232  # standard normal upper 0.1 % point
    h = 2.0 / (9.0 * dof)
    return dof * (1 - h + z * np.sqrt(h))**3


def chi_square(observed, expected) -> float:
    observed = np.asarray(observed, dtype=float)
    expected = np.asarray(expected, dtype=float)
    return float(((observed - expected)**2 / expected).sum())


@pytest.fixture
def lt_dataset(toy_label_dataset):
    """10 classes, CIFAR-style exponential profile from 200 images, IF 40:
    counts 200 ... 5 (interleaved labels in the wrapped set)."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(10), 200))
    return LongTailedDataset(
        toy_label_dataset(labels, image_size=4), imbalance_factor=40)


def test_wilson_hilferty_matches_table():
    assert abs(chi2_critical_999(9) - CHI2_999[9]) / CHI2_999[9] < 0.01


def test_balanced_branch_uniform_uniform_branch_long_tailed(lt_dataset):
    counts = lt_dataset.class_counts
    assert counts[0] == 200 and counts[-1] == 5
    labels = lt_dataset.get_gt_labels()
    sampler = ClassBalancedPairSampler(lt_dataset, seed=0)
    assert len(sampler) == len(lt_dataset)
    uniform, balanced = [], []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        pairs = list(sampler)
        uniform += [i for i, _ in pairs]
        balanced += [j for _, j in pairs]
    num = len(balanced)
    assert num == 20 * len(lt_dataset)

    # Uniform branch: every epoch is a permutation, so the class histogram is
    # exactly 20 x the long-tailed counts (not uniform at all).
    uni_hist = np.bincount(labels[uniform], minlength=10)
    assert uni_hist.tolist() == [20 * c for c in counts]
    assert chi_square(uni_hist, [num / 10] * 10) > 100 * CHI2_999[9]

    # Balanced branch: classes uniform (chi-square, 9 dof, p = 0.001).
    bal_labels = labels[balanced]
    bal_hist = np.bincount(bal_labels, minlength=10)
    assert chi_square(bal_hist, [num / 10] * 10) < CHI2_999[9]
    # ... and images uniform within their class: the per-class statistics
    # summed, with sum(n_c - 1) degrees of freedom.
    stat, dof = 0.0, 0
    balanced = np.asarray(balanced)
    for c in range(10):
        members = np.flatnonzero(labels == c)
        drawn = balanced[bal_labels == c]
        hist = np.array([(drawn == m).sum() for m in members])
        assert hist.sum() == bal_hist[c]
        stat += chi_square(hist, [bal_hist[c] / len(members)] * len(members))
        dof += len(members) - 1
    assert stat < chi2_critical_999(dof)


def test_two_ranks_share_the_permutation_but_not_the_balanced_draws(
        lt_dataset):
    per_rank = {}
    for rank in (0, 1):
        with mock.patch('mmengine.dataset.sampler.get_dist_info',
                        return_value=(rank, 2)):
            sampler = ClassBalancedPairSampler(lt_dataset, seed=7)
            default = DefaultSampler(lt_dataset, seed=7)
        for s in (sampler, default):
            s.set_epoch(3)
        pairs = list(sampler)
        # The uniform indices are exactly mmengine's DefaultSampler's.
        assert [i for i, _ in pairs] == list(default)
        per_rank[rank] = pairs
    i0 = [i for i, _ in per_rank[0]]
    i1 = [i for i, _ in per_rank[1]]
    # Together the ranks cover the set once (plus round-up padding).
    half = -(-len(lt_dataset) // 2)
    assert len(i0) == len(i1) == half
    assert sorted(set(i0 + i1)) == list(range(len(lt_dataset)))
    j0 = np.array([j for _, j in per_rank[0]])
    j1 = np.array([j for _, j in per_rank[1]])
    assert len(j0) == len(j1) == half
    # Independent draws over ~1,000 images: they agree only by chance.
    assert (j0 == j1).mean() < 0.1


def test_same_seed_and_epoch_reproduce_after_resume(lt_dataset):
    run = ClassBalancedPairSampler(lt_dataset, seed=11)
    history = []
    for epoch in range(4):
        run.set_epoch(epoch)
        history.append(list(run))
    assert history[2] != history[3]
    assert [j for _, j in history[2]] != [j for _, j in history[3]]
    # A fresh sampler (a resumed run) set to epoch 3 draws the same pairs.
    resumed = ClassBalancedPairSampler(lt_dataset, seed=11)
    resumed.set_epoch(3)
    assert list(resumed) == history[3]
    assert list(resumed) == history[3]  # iterating twice changes nothing
    other_seed = ClassBalancedPairSampler(lt_dataset, seed=12)
    other_seed.set_epoch(3)
    assert [j for _, j in other_seed] != [j for _, j in history[3]]


def test_seed_none_uses_a_synchronised_seed(lt_dataset):
    with mock.patch('mmengine.dataset.sampler.sync_random_seed',
                    return_value=1234):
        sampler = ClassBalancedPairSampler(lt_dataset)
    assert sampler.seed == 1234
    assert list(sampler) == list(ClassBalancedPairSampler(lt_dataset,
                                                          seed=1234))


def test_registry_build_like_the_runner(lt_dataset):
    sampler = DATA_SAMPLERS.build(
        dict(type='ClassBalancedPairSampler', shuffle=False),
        default_args=dict(dataset=lt_dataset, seed=0))
    assert [i for i, _ in sampler] == list(range(len(lt_dataset)))


def _pair_dataset(lt_dataset, **kwargs):
    return HybridPairDataset(
        lt_dataset,
        pipeline=[
            dict(type='MultiView', num_views=2, transforms=[[]]),
            dict(type='PackInputs', meta_keys=('toy_index', ))
        ],
        balanced_pipeline=[dict(type='PackInputs', meta_keys=('toy_index', ))],
        **kwargs)


def test_dataloader_with_workers_gives_the_batch_structure(lt_dataset):
    dataset = _pair_dataset(lt_dataset)
    sampler = ClassBalancedPairSampler(dataset, seed=3)
    sampler.set_epoch(1)
    pairs = list(sampler)
    loader = DataLoader(
        dataset,
        batch_size=4,
        sampler=sampler,
        num_workers=2,
        collate_fn=pseudo_collate)
    ori = [lt_dataset.get_ori_index(k) for k in range(len(lt_dataset))]
    labels = lt_dataset.get_gt_labels()
    checked = 0
    for b, batch in enumerate(loader):
        if b == 3:
            break
        expected = pairs[4 * b:4 * b + 4]
        inputs, samples = batch['inputs'], batch['data_samples']
        assert len(inputs) == 3  # view 1, view 2, balanced
        assert all(len(view) == 4 for view in inputs)
        assert len(samples) == 2 and all(len(s) == 4 for s in samples)
        for n, (i, j) in enumerate(expected):
            for view in inputs[:2]:
                assert view[n].shape == (3, 4, 4)
                assert int(view[n][0, 0, 0]) == ori[i] % 256
            assert int(inputs[2][n][0, 0, 0]) == ori[j] % 256
            assert isinstance(samples[0][n], DataSample)
            assert samples[0][n].toy_index == ori[i]
            assert samples[1][n].toy_index == ori[j]
            assert int(samples[0][n].gt_label) == labels[i]
            assert int(samples[1][n].gt_label) == labels[j]
            checked += 1
    assert checked == 12
    # The preprocessor turns the batch into [v1 (4), v2 (4), balanced (4)].
    out = HybridDataPreprocessor()(batch, training=True)
    assert out['inputs'].shape == (12, 3, 4, 4)
    assert len(out['data_samples']) == 8


def test_int_index_and_delegation(lt_dataset):
    dataset = HybridPairDataset(
        lt_dataset,
        pipeline=[dict(type='PackInputs', meta_keys=('toy_index', ))])
    sample = dataset[7]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['data_samples'].toy_index == lt_dataset.get_ori_index(7)
    # One-view pipeline used for both members of a pair.
    pair = dataset[(7, 8)]
    assert len(pair['inputs']) == 2
    assert dataset.class_counts == lt_dataset.class_counts
    assert dataset.get_cat_ids(7) == lt_dataset.get_cat_ids(7)
    assert dataset.metainfo == lt_dataset.metainfo
    assert len(dataset) == len(lt_dataset)
    # A plain dataset (no class_counts attribute) is counted.
    plain = HybridPairDataset(
        lt_dataset.dataset, pipeline=[dict(type='PackInputs')])
    assert plain.class_counts == [200] * 10
    # Built from configs, lazily.
    lazy = DATASETS.build(
        dict(
            type='HybridPairDataset',
            dataset=lt_dataset,
            pipeline=[dict(type='PackInputs')],
            lazy_init=True))
    assert not lazy._fully_initialized
    assert len(lazy) == len(lt_dataset)


def test_pair_dataset_errors(lt_dataset):
    multi = [
        dict(type='MultiView', num_views=2, transforms=[[]]),
        dict(type='PackInputs')
    ]
    dataset = HybridPairDataset(lt_dataset, pipeline=multi)
    with pytest.raises(ValueError,
                       match=r'pipeline \(used as balanced_pipeline\) must '
                       'produce a single view.*got 2 views'):
        dataset[(0, 1)]
    with pytest.raises(TypeError, match=r'int index or a pair.*\(1, 2, 3\)'):
        dataset[(1, 2, 3)]
    with pytest.raises(TypeError, match=r"pipeline must be a list.*'Pack"):
        HybridPairDataset(lt_dataset, pipeline='PackInputs')
    with pytest.raises(TypeError,
                       match=r'balanced_pipeline must be a list.*dict'):
        HybridPairDataset(
            lt_dataset, pipeline=multi, balanced_pipeline=dict(type='X'))
    no_pack = HybridPairDataset(lt_dataset, pipeline=[])
    with pytest.raises(ValueError, match='pipeline must end with PackInputs'):
        no_pack[0]


def test_sampler_errors(toy_label_dataset):
    with pytest.raises(TypeError, match=r"seed must be an int.*'1'"):
        ClassBalancedPairSampler(toy_label_dataset([0, 1]), seed='1')
    with pytest.raises(ValueError, match='one label per image'):
        ClassBalancedPairSampler(_MultiLabel(), seed=0)


class _MultiLabel:
    """A dataset whose sample has two labels."""

    def __len__(self):
        return 2

    def get_cat_ids(self, idx):
        return [0, 1]


class _RecordDraws:
    """Hook body: record the sampler's pairs at the start of every epoch,
    after DistSamplerSeedHook has called set_epoch."""

    def __init__(self):
        self.draws = {}

    def __call__(self, runner):
        sampler = runner.train_dataloader.sampler
        self.draws[runner.epoch] = (sampler.epoch, list(sampler))


def _tiny_runner(dataset, work_dir, max_epochs, record, resume_from=None):
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class TinyModel(BaseModel):
        """Consumes a hybrid batch; one parameter to optimise."""

        def __init__(self):
            super().__init__(
                data_preprocessor=HybridDataPreprocessor(num_classes=10))
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            assert inputs.shape[0] == 3 * len(data_samples) // 2
            return dict(loss=(self.w - inputs.float().mean())**2)

    class RecordHook(Hook):
        priority = 'LOW'  # after DistSamplerSeedHook (NORMAL)

        def before_train_epoch(self, runner):
            record(runner)

    return Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dataset,
            sampler=dict(type='ClassBalancedPairSampler', shuffle=True),
            batch_size=64,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[RecordHook()],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=100)),
        randomness=dict(seed=5),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmpretrain',
        log_level='WARNING')


def test_runner_resume_redraws_the_same_pairs(lt_dataset, tmp_path):
    """A run resumed from epoch 2's checkpoint draws, in its third epoch,
    exactly the pairs the uninterrupted run drew."""
    dataset = _pair_dataset(lt_dataset)
    full = _RecordDraws()
    _tiny_runner(dataset, tmp_path / 'full', 3, full).train()
    assert sorted(full.draws) == [0, 1, 2]
    assert all(full.draws[e][0] == e for e in full.draws)
    assert full.draws[1][1] != full.draws[2][1]

    resumed = _RecordDraws()
    _tiny_runner(dataset, tmp_path / 'resumed', 3, resumed,
                 resume_from=str(tmp_path / 'full' / 'epoch_2.pth')).train()
    assert sorted(resumed.draws) == [2]
    assert resumed.draws[2] == full.draws[2]


class _LabelsOnly:
    """A minimal dataset: just labels (picklable for spawned processes)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return self.labels


def _sampler_rank_main(rank, world_size, init_file, labels, queue):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=world_size)
    try:
        # seed=None: the seed is drawn on rank 0 and broadcast.
        sampler = ClassBalancedPairSampler(_LabelsOnly(labels))
        sampler.set_epoch(2)
        queue.put((rank, sampler.seed, list(sampler)))
    finally:
        dist.destroy_process_group()


def test_real_two_process_run(tmp_path):
    import torch.multiprocessing as mp
    labels = np.repeat(np.arange(5), [80, 40, 20, 10, 5])
    queue = mp.get_context('spawn').SimpleQueue()
    mp.spawn(
        _sampler_rank_main,
        args=(2, str(tmp_path / 'rendezvous'), labels, queue),
        nprocs=2,
        join=True)
    out = {}
    for _ in range(2):
        rank, seed, pairs = queue.get()
        out[rank] = (seed, pairs)
    assert out[0][0] == out[1][0]  # synchronised seed
    i0 = [i for i, _ in out[0][1]]
    i1 = [i for i, _ in out[1][1]]
    # One shared permutation, split between the ranks (78 + 78 with one
    # padded duplicate), exactly as DefaultSampler does with that seed.
    assert len(i0) == len(i1) == 78
    assert sorted(set(i0 + i1)) == list(range(155))
    perm = torch.randperm(155, generator=torch.Generator().manual_seed(
        out[0][0] + 2)).tolist()
    perm += perm[:1]
    assert i0 == perm[0::2] and i1 == perm[1::2]
    j0 = np.array([j for _, j in out[0][1]])
    j1 = np.array([j for _, j in out[1][1]])
    assert (j0 == j1).mean() < 0.2
