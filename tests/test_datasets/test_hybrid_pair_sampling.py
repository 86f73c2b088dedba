"""ClassBalancedPairSampler + HybridPairDataset: balanced and uniform
branches, per-pair seeds, seeded per-sample transforms, the set held in
memory, ranks, resume, worker processes, batch structure, errors."""
import random
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import run_gloo
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATA_SAMPLERS, DATASETS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import (
    ClassBalancedPairSampler,
    HybridPairDataset,
    LongTailedDataset,
)
from mmlt_hybrid.models.utils import HybridDataPreprocessor

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
        triples = list(sampler)
        uniform += [i for i, _, _ in triples]
        balanced += [j for _, j, _ in triples]
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
        with mock.patch(
                'mmengine.dataset.sampler.get_dist_info',
                return_value=(rank, 2)):
            sampler = ClassBalancedPairSampler(lt_dataset, seed=7)
            default = DefaultSampler(lt_dataset, seed=7)
        for s in (sampler, default):
            s.set_epoch(3)
        triples = list(sampler)
        # The uniform indices are exactly mmengine's DefaultSampler's.
        assert [i for i, _, _ in triples] == list(default)
        per_rank[rank] = triples
    i0 = [i for i, _, _ in per_rank[0]]
    i1 = [i for i, _, _ in per_rank[1]]
    # Together the ranks cover the set once (plus round-up padding).
    half = -(-len(lt_dataset) // 2)
    assert len(i0) == len(i1) == half
    assert sorted(set(i0 + i1)) == list(range(len(lt_dataset)))
    j0 = np.array([j for _, j, _ in per_rank[0]])
    j1 = np.array([j for _, j, _ in per_rank[1]])
    assert len(j0) == len(j1) == half
    # Independent draws over ~1,000 images: they agree only by chance.
    assert (j0 == j1).mean() < 0.1
    # So do the seeds of the per-sample transforms.
    seeds0 = {seed for _, _, seed in per_rank[0]}
    seeds1 = {seed for _, _, seed in per_rank[1]}
    assert not seeds0 & seeds1


def test_same_seed_and_epoch_reproduce_after_resume(lt_dataset):
    run = ClassBalancedPairSampler(lt_dataset, seed=11)
    history = []
    for epoch in range(4):
        run.set_epoch(epoch)
        history.append(list(run))
    assert history[2] != history[3]
    assert [j for _, j, _ in history[2]] != [j for _, j, _ in history[3]]
    # A fresh sampler (a resumed run) set to epoch 3 draws the same pairs.
    resumed = ClassBalancedPairSampler(lt_dataset, seed=11)
    resumed.set_epoch(3)
    assert list(resumed) == history[3]
    assert list(resumed) == history[3]  # iterating twice changes nothing
    other_seed = ClassBalancedPairSampler(lt_dataset, seed=12)
    other_seed.set_epoch(3)
    assert [j for _, j, _ in other_seed] != [j for _, j, _ in history[3]]


def _triples(dataset, seed, epoch, rank=0, world_size=1):
    with mock.patch(
            'mmengine.dataset.sampler.get_dist_info',
            return_value=(rank, world_size)):
        sampler = ClassBalancedPairSampler(dataset, seed=seed)
    sampler.set_epoch(epoch)
    return sampler, list(sampler)


def test_triples_pairs_unchanged_and_seeds_per_seed_epoch_rank(lt_dataset):
    sampler, triples = _triples(lt_dataset, seed=5, epoch=2)
    assert all(
        len(t) == 3 and all(isinstance(x, int) for x in t) for t in triples)
    default = DefaultSampler(lt_dataset, seed=5)
    default.set_epoch(2)
    # (i, j) are what DefaultSampler and balanced_indices give.
    assert [i for i, _, _ in triples] == list(default)
    assert [j for _, j, _ in triples
            ] == sampler.balanced_indices(len(triples)).tolist()
    seeds = [seed for _, _, seed in triples]
    assert all(0 <= seed < 2**63 for seed in seeds)
    assert len(set(seeds)) == len(seeds)  # one seed per pair
    # Deterministic in (seed, epoch, rank) ...
    assert _triples(lt_dataset, seed=5, epoch=2)[1] == triples
    assert list(sampler) == triples
    # ... and new seeds for another epoch, rank or run seed.
    for other in (_triples(lt_dataset, seed=5,
                           epoch=3)[1], _triples(lt_dataset, seed=6,
                                                 epoch=2)[1],
                  _triples(lt_dataset, seed=5, epoch=2, rank=1,
                           world_size=2)[1]):
        assert not set(seeds) & {seed for _, _, seed in other}


def test_seed_none_uses_a_synchronised_seed(lt_dataset):
    with mock.patch(
            'mmengine.dataset.sampler.sync_random_seed', return_value=1234):
        sampler = ClassBalancedPairSampler(lt_dataset)
    assert sampler.seed == 1234
    assert list(sampler) == list(
        ClassBalancedPairSampler(lt_dataset, seed=1234))


def test_registry_build_like_the_runner(lt_dataset):
    sampler = DATA_SAMPLERS.build(
        dict(type='ClassBalancedPairSampler', shuffle=False),
        default_args=dict(dataset=lt_dataset, seed=0))
    assert [i for i, _, _ in sampler] == list(range(len(lt_dataset)))


def _pair_dataset(lt_dataset, **kwargs):
    return HybridPairDataset(
        lt_dataset,
        pipeline=[
            dict(type='MultiView', num_views=2, transforms=[[]]),
            dict(type='PackInputs', meta_keys=('toy_index', ))
        ],
        balanced_pipeline=[dict(type='PackInputs', meta_keys=('toy_index', ))],
        **kwargs)


class NoiseDataset(BaseDataset):
    """Random RGB images (one size or the given sizes), sample k labelled
    ``labels[k]`` with ``index=k``."""

    def __init__(self, labels, sizes=None, seed=0):
        self._labels = [int(y) for y in labels]
        self._sizes = sizes or [(10, 12)] * len(self._labels)
        self._seed = seed
        super().__init__(
            ann_file='',
            metainfo=dict(
                classes=[f'c{c}' for c in range(max(self._labels) + 1)]),
            pipeline=[])

    def load_data_list(self):
        rng = np.random.default_rng(self._seed)
        return [
            dict(
                img=rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                gt_label=label,
                index=k)
            for k, (label, size) in enumerate(zip(self._labels, self._sizes))
        ]


RANDOM_VIEWS = [
    dict(
        type='MultiView',
        num_views=2,
        transforms=[[
            dict(type='RandomCrop', crop_size=8, padding=2),
            dict(type='RandomFlip', prob=0.5, direction='horizontal')
        ]]),
    dict(type='PackInputs', meta_keys=('index', ))
]
RANDOM_VIEW = [
    dict(type='RandomCrop', crop_size=8, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', meta_keys=('index', ))
]


def _random_pair_dataset(num=12):
    labels = [k % 3 for k in range(num)]
    return HybridPairDataset(
        NoiseDataset(labels),
        pipeline=RANDOM_VIEWS,
        balanced_pipeline=RANDOM_VIEW)


def _images_of(pair):
    return pair['inputs']['views'] + [pair['inputs']['balanced']]


def test_dataloader_with_workers_gives_the_batch_structure():
    dataset = _random_pair_dataset(24)
    sampler = ClassBalancedPairSampler(dataset, seed=3)
    sampler.set_epoch(1)
    triples = list(sampler)
    loader = DataLoader(
        dataset,
        batch_size=4,
        sampler=sampler,
        num_workers=2,
        collate_fn=pseudo_collate)
    labels = dataset.get_gt_labels()
    checked = 0
    for b, batch in enumerate(loader):
        if b == 3:
            break
        expected = triples[4 * b:4 * b + 4]
        inputs, samples = batch['inputs'], batch['data_samples']
        assert set(inputs) == {'views', 'balanced'}
        assert len(inputs['views']) == 2
        assert all(len(view) == 4 for view in inputs['views'])
        assert len(inputs['balanced']) == 4
        assert set(samples) == {'uniform', 'balanced'}
        assert all(len(samples[key]) == 4 for key in samples)
        for n, (i, j, seed) in enumerate(expected):
            # What the main process makes of the same triple: the workers'
            # augmentation depends on the triple only.
            direct = dataset[(i, j, seed)]
            for view, ref in zip(inputs['views'], direct['inputs']['views']):
                assert view[n].shape == (3, 8, 8)
                assert torch.equal(view[n], ref)
            assert torch.equal(inputs['balanced'][n],
                               direct['inputs']['balanced'])
            assert isinstance(samples['uniform'][n], DataSample)
            assert samples['uniform'][n].index == i
            assert samples['balanced'][n].index == j
            assert int(samples['uniform'][n].gt_label) == labels[i]
            assert int(samples['balanced'][n].gt_label) == labels[j]
            checked += 1
    assert checked == 12
    # The preprocessor keeps the layout, as tensors.
    out = HybridDataPreprocessor()(batch, training=True)
    assert [v.shape for v in out['inputs']['views']] == [(4, 3, 8, 8)] * 2
    assert out['inputs']['balanced'].shape == (4, 3, 8, 8)
    assert [len(out['data_samples'][k])
            for k in ('uniform', 'balanced')] == [4, 4]


class _GlobalDraws:
    """A per-sample transform drawing from the three global generators."""

    def __call__(self, results):
        results['draws'] = (random.random(), float(np.random.rand()),
                            float(torch.rand(1)))
        return results


def _rng_states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _same_states(a, b):
    return (a[0] == b[0]
            and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
            and torch.equal(a[2], b[2]))


def test_triple_index_seeds_the_per_sample_transforms():
    dataset = _random_pair_dataset()
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = _rng_states()
    first = dataset[(3, 7, 1234)]
    assert _same_states(_rng_states(), before)  # global states restored
    # The same triple again, whatever the global generators hold.
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    again = dataset[(3, 7, 1234)]
    assert len(_images_of(first)) == 3
    for a, b in zip(_images_of(first), _images_of(again)):
        assert a.shape == (3, 8, 8) and torch.equal(a, b)
    # A pair without a seed draws from (and moves) the global generators.
    before = _rng_states()
    dataset[(3, 7)]
    assert not _same_states(_rng_states(), before)
    # Other seeds give other crops / flips (fixed seeds: no chance here).
    outcomes = {
        tuple(img.numpy().tobytes() for img in _images_of(dataset[(3, 7, s)]))
        for s in range(10)
    }
    assert len(outcomes) >= 8
    # The two views of one triple are augmented differently in general.
    assert any(not torch.equal(*dataset[(3, 7, s)]['inputs']['views'])
               for s in range(10))


@pytest.mark.parametrize('seed', [0, 77, 2**62 - 1])
def test_triple_seed_seeds_python_numpy_and_torch(seed):
    dataset = HybridPairDataset(
        NoiseDataset([0, 1, 0, 1]),
        pipeline=[
            _GlobalDraws(),
            dict(type='PackInputs', meta_keys=('draws', ))
        ])
    pair = dataset[(0, 3, seed)]
    # Reference: seed the three generators by hand, draw for the uniform
    # sample, then for the balanced one.
    state = _rng_states()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    expected = [(random.random(), float(np.random.rand()),
                 float(torch.rand(1))) for _ in range(2)]
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])
    assert pair['data_samples']['uniform'].draws == expected[0]
    assert pair['data_samples']['balanced'].draws == expected[1]


class _CountingPack:
    """PackInputs that counts its calls."""

    def __init__(self):
        from mmpretrain.datasets.transforms import PackInputs
        self.pack = PackInputs()
        self.calls = 0

    def __call__(self, results):
        self.calls += 1
        return self.pack(results)


def test_hold_in_memory_rows_are_the_packed_images():
    labels = [2, 0, 1, 1, 0]
    raw = NoiseDataset(labels)
    pack = _CountingPack()
    dataset = HybridPairDataset(raw, pipeline=[pack], hold_in_memory=True)
    assert pack.calls == len(labels)  # packed once, at initialisation
    # Independent reference: the HWC uint8 image as a CHW tensor.
    expected = [
        torch.from_numpy(raw[k]['img'].transpose(2, 0, 1).copy())
        for k in range(len(labels))
    ]
    for k, label in enumerate(labels):
        sample = dataset[k]
        assert sample['inputs'].dtype == torch.uint8
        assert torch.equal(sample['inputs'], expected[k])
        assert sample['data_samples'].gt_label.tolist() == [label]
    for index in ((4, 1), (4, 1, 99)):
        pair = dataset[index]
        assert len(pair['inputs']['views']) == 1
        assert torch.equal(pair['inputs']['views'][0], expected[4])
        assert torch.equal(pair['inputs']['balanced'], expected[1])
        assert pair['data_samples']['uniform'].gt_label.tolist() == [0]
        assert pair['data_samples']['balanced'].gt_label.tolist() == [0]
    assert pack.calls == len(labels)  # nothing decoded or packed again
    # A served row is a copy of its own: no view of the stored tensor.
    row = dataset[2]['inputs']
    assert row.untyped_storage().nbytes() == row.numel()
    row.zero_()
    assert torch.equal(dataset[2]['inputs'], expected[2])


def test_hold_in_memory_errors():
    raw = NoiseDataset([0, 1, 0, 1])
    with pytest.raises(
            ValueError,
            match='hold_in_memory=True.*'
            'balanced_pipeline must be None'):
        HybridPairDataset(
            raw,
            pipeline=[dict(type='PackInputs')],
            balanced_pipeline=[dict(type='PackInputs')],
            hold_in_memory=True)
    with pytest.raises(TypeError, match='hold_in_memory'):
        HybridPairDataset(
            raw, pipeline=[dict(type='PackInputs')], hold_in_memory=1)
    sizes = [(10, 12)] * 3 + [(10, 11)] + [(10, 12)]
    with pytest.raises(
            ValueError,
            match=r'shape \(3, 10, 11\) for index 3 after .*'
            r'\(3, 10, 12\)'):
        HybridPairDataset(
            NoiseDataset([0, 1, 0, 1, 0], sizes=sizes),
            pipeline=[dict(type='PackInputs')],
            hold_in_memory=True)
    # Several views per sample cannot be held either.
    with pytest.raises(ValueError, match='for index 0'):
        HybridPairDataset(raw, pipeline=RANDOM_VIEWS, hold_in_memory=True)


def test_int_index_and_delegation(lt_dataset):
    dataset = HybridPairDataset(
        lt_dataset,
        pipeline=[dict(type='PackInputs', meta_keys=('toy_index', ))])
    sample = dataset[7]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['data_samples'].toy_index == lt_dataset.get_ori_index(7)
    # One-view pipeline used for both members of a pair.
    pair = dataset[(7, 8)]
    assert len(pair['inputs']['views']) == 1
    assert torch.equal(pair['inputs']['views'][0], sample['inputs'])
    assert pair['data_samples']['uniform'].toy_index == \
        lt_dataset.get_ori_index(7)
    assert pair['data_samples']['balanced'].toy_index == \
        lt_dataset.get_ori_index(8)
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
    with pytest.raises(
            ValueError,
            match=r'pipeline \(used as balanced_pipeline\) must '
            'produce a single view.*got 2 views'):
        dataset[(0, 1)]
    for bad in ((1, 2, 3, 4), (1, ), (1.0, 2), (1, 2, '3')):
        with pytest.raises(
                TypeError,
                match=r'int index, a pair \(i, j\) '
                r'or a triple \(i, j, seed\)'):
            dataset[bad]
    with pytest.raises(
            TypeError,
            match=r"pipeline='PackInputs' is not "
            'allowed; it must be a list of transform configs'):
        HybridPairDataset(lt_dataset, pipeline='PackInputs')
    with pytest.raises(
            TypeError,
            match=r"balanced_pipeline=\{'type': 'X'\} is not "
            r'allowed; it must be a list .*\(dicts\)'):
        HybridPairDataset(
            lt_dataset, pipeline=multi, balanced_pipeline=dict(type='X'))
    with pytest.raises(TypeError, match=r'pipeline=\[3\] is not allowed'):
        HybridPairDataset(lt_dataset, pipeline=[3])
    no_pack = HybridPairDataset(lt_dataset, pipeline=[])
    with pytest.raises(ValueError, match='pipeline must end with PackInputs'):
        no_pack[0]


def test_sampler_errors(toy_label_dataset):
    with pytest.raises(
            ValueError,
            match=r"ClassBalancedPairSampler: "
            r"seed='1' is not allowed; it must be None or an "
            'integer'):
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
            n = len(data_samples['balanced'])
            assert len(data_samples['uniform']) == n
            assert [v.shape[0] for v in inputs['views']] == [n, n]
            assert inputs['balanced'].shape[0] == n
            return dict(loss=(self.w - inputs['balanced'].mean())**2)

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
    _tiny_runner(
        dataset,
        tmp_path / 'resumed',
        3,
        resumed,
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


def _sampler_rank(rank, labels):
    # seed=None: the seed is drawn on rank 0 and broadcast.
    sampler = ClassBalancedPairSampler(_LabelsOnly(labels))
    sampler.set_epoch(2)
    return sampler.seed, list(sampler)


def test_real_two_process_run(tmp_path):
    labels = np.repeat(np.arange(5), [80, 40, 20, 10, 5])
    out = run_gloo(_sampler_rank, 2, tmp_path, labels)
    assert out[0][0] == out[1][0]  # synchronised seed
    i0 = [i for i, _, _ in out[0][1]]
    i1 = [i for i, _, _ in out[1][1]]
    # One shared permutation, split between the ranks (78 + 78 with one
    # padded duplicate), exactly as DefaultSampler does with that seed.
    assert len(i0) == len(i1) == 78
    assert sorted(set(i0 + i1)) == list(range(155))
    perm = torch.randperm(
        155, generator=torch.Generator().manual_seed(out[0][0] + 2)).tolist()
    perm += perm[:1]
    assert i0 == perm[0::2] and i1 == perm[1::2]
    j0 = np.array([j for _, j, _ in out[0][1]])
    j1 = np.array([j for _, j, _ in out[1][1]])
    assert (j0 == j1).mean() < 0.2
    assert not {t[2] for t in out[0][1]} & {t[2] for t in out[1][1]}


# ClassBalancedSampler: class-balanced single indices (the "CE with
# class-balanced sampling" baseline). Built through the registry as the
# runner builds it.
def _cbs(dataset, **kwargs):
    return DATA_SAMPLERS.build(
        dict(type='ClassBalancedSampler', **kwargs),
        default_args=dict(dataset=dataset))


def test_class_balanced_sampler_classes_and_images_uniform(lt_dataset):
    labels = lt_dataset.get_gt_labels()
    sampler = _cbs(lt_dataset, seed=0)
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        # One epoch: as many single int indices as the dataset has images.
        assert len(indices) == len(sampler) == len(lt_dataset)
        assert all(type(k) is int for k in indices)
        drawn += indices
    drawn = np.asarray(drawn)
    assert drawn.min() >= 0 and drawn.max() < len(lt_dataset)
    num = len(drawn)
    # The long-tailed set (200 ... 5 a class) drawn with uniform classes:
    # chi-square against num / 10 a class (9 dof, p = 0.001).
    hist = np.bincount(labels[drawn], minlength=10)
    assert chi_square(hist, [num / 10] * 10) < CHI2_999[9]
    # Within a class every image equally likely (summed statistic).
    stat, dof = 0.0, 0
    for c in range(10):
        members = np.flatnonzero(labels == c)
        per_image = [(drawn == m).sum() for m in members]
        stat += chi_square(per_image, [hist[c] / len(members)] * len(members))
        dof += len(members) - 1
    assert stat < chi2_critical_999(dof)


def test_class_balanced_sampler_resumes_in_the_same_order(lt_dataset):
    run = _cbs(lt_dataset, seed=5)
    history = []
    for epoch in range(3):
        run.set_epoch(epoch)
        history.append(list(run))
    assert history[1] != history[2]  # every epoch new draws
    resumed = _cbs(lt_dataset, seed=5)  # a resumed run, restored to epoch 2
    resumed.set_epoch(2)
    assert list(resumed) == history[2]
    assert list(resumed) == history[2]  # iterating twice changes nothing
    other = _cbs(lt_dataset, seed=6)
    other.set_epoch(2)
    assert list(other) != history[2]


def test_class_balanced_sampler_ranks_draw_their_own_share(lt_dataset):
    per_rank = []
    for rank in (0, 1):
        with mock.patch(
                'mmengine.dataset.sampler.get_dist_info',
                return_value=(rank, 2)):
            sampler = _cbs(lt_dataset, seed=3)
        sampler.set_epoch(1)
        per_rank.append(np.asarray(list(sampler)))
    half = -(-len(lt_dataset) // 2)  # round_up: ceil(len / 2) each
    assert len(per_rank[0]) == len(per_rank[1]) == half
    assert (per_rank[0] == per_rank[1]).mean() < 0.1


def test_class_balanced_sampler_errors(toy_label_dataset):
    with pytest.raises(
            ValueError,
            match=r"ClassBalancedSampler: seed='1' "
            'is not allowed; it must be None or an integer'):
        _cbs(toy_label_dataset([0, 1]), seed='1')
    with pytest.raises(ValueError, match='ClassBalancedSampler got an empty'):
        _cbs(_LabelsOnly([]), seed=0)
