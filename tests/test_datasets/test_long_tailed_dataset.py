"""LongTailedDataset: the CIFAR-LT protocol on real CIFAR-10, other profiles,
lazy init and the errors."""
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_ROOT_VAR, real_data_root
from mmpretrain.registry import DATASETS

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import LongTailedDataset, long_tailed_counts

# docs/method.md, "CIFAR-LT" (Cao et al. 2019).
PUBLISHED_C10 = {
    100: (12406, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]),
    50: (13996, [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100]),
    10: (20431, [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]),
}
PUBLISHED_C100_TOTALS = {100: 10847, 50: 12608, 10: 19573}
#: An image-folder copy of CIFAR-10 (``train/<class>/NNNNN.png``, the name
#: giving the image's position in the original batches).
REAL_CIFAR10 = real_data_root() / 'cifar10'


def reference_selection(root: Path, imbalance_factor: float):
    """Cao et al.'s IMBALANCECIFAR10 selection, written from its description.

    Rebuilds the original CIFAR-10 label array from the file names (the
    5-digit name is the image's position in the original batches), then
    seeds numpy's global legacy RNG with 0 and shuffles each class's global
    indices, classes in order, keeping the first n_i. Returns the selected
    (class folder, original index) pairs in selection order.
    """
    classes = sorted(os.listdir(root / 'train'))
    targets = np.full(50000, -1, dtype=np.int64)
    for label, name in enumerate(classes):
        for fname in os.listdir(root / 'train' / name):
            targets[int(fname.split('.')[0])] = label
    assert (targets >= 0).all()
    img_max = 50000 / len(classes)
    per_cls = [
        int(img_max * (1. / imbalance_factor)**(i / (len(classes) - 1.0)))
        for i in range(len(classes))
    ]
    state = np.random.get_state()
    try:
        np.random.seed(0)
        selected = []
        for the_class, the_img_num in zip(np.unique(targets), per_cls):
            idx = np.where(targets == the_class)[0]
            np.random.shuffle(idx)
            selected.extend(
                (classes[the_class], int(i)) for i in idx[:the_img_num])
    finally:
        np.random.set_state(state)
    return selected


@pytest.mark.skipif(
    not REAL_CIFAR10.is_dir(),
    reason='no CIFAR-10 folder copy at '
    f'{REAL_CIFAR10} (set {DATA_ROOT_VAR} to the folder holding cifar10/)')
@pytest.mark.parametrize('imbalance_factor', [100, 50, 10])
def test_cifar10_protocol_on_real_data(imbalance_factor):
    total, counts = PUBLISHED_C10[imbalance_factor]
    ds = DATASETS.build(
        dict(
            type='LongTailedDataset',
            imbalance_factor=imbalance_factor,
            dataset=dict(
                type='CustomDataset',
                data_root=str(REAL_CIFAR10),
                data_prefix='train',
                pipeline=[])))
    assert len(ds) == total
    assert ds.class_counts == counts
    got = []
    for k in range(len(ds)):
        path = Path(ds.get_data_info(k)['img_path'])
        got.append((path.parent.name, int(path.stem)))
        assert ds.get_cat_ids(k) == [ds.get_data_info(k)['gt_label']]
    expected = reference_selection(REAL_CIFAR10, imbalance_factor)
    assert got == expected
    # The labels seen through the wrapper follow the per-class counts.
    assert np.bincount(ds.get_gt_labels()).tolist() == counts
    assert ds.metainfo['classes'][0] == 'airplane'


@pytest.mark.parametrize('imbalance_factor', [100, 50, 10])
def test_counts_helper_matches_published(imbalance_factor):
    total, counts = PUBLISHED_C10[imbalance_factor]
    assert long_tailed_counts(5000, 10, imbalance_factor) == counts
    c100 = long_tailed_counts(500, 100, imbalance_factor)
    assert sum(c100) == PUBLISHED_C100_TOTALS[imbalance_factor]
    assert c100[0] == 500 and c100[-1] == 500 // imbalance_factor
    # Written differently: n_max * IF ** (-i / (C - 1)).
    assert c100 == [int(500 * imbalance_factor**(-i / 99)) for i in range(100)]


def test_step_and_none_profiles(toy_label_dataset):
    labels = np.repeat(np.arange(5), 20)  # 5 classes x 20
    base = toy_label_dataset(labels)
    step = LongTailedDataset(base, imbalance_factor=10, profile='step')
    assert step.class_counts == [20, 20, 2, 2, 2]
    assert long_tailed_counts(20, 5, 10, 'step') == [20, 20, 2, 2, 2]
    none = LongTailedDataset(base, imbalance_factor=10, profile='none')
    assert none.class_counts == [20] * 5
    assert [none.get_ori_index(k)
            for k in range(len(none))] == list(range(100))
    # IF 1 with 'exp' keeps everything (in shuffled order).
    flat = LongTailedDataset(base, imbalance_factor=1)
    assert flat.class_counts == [20] * 5
    assert sorted(flat.get_ori_index(k)
                  for k in range(100)) == list(range(100))


def test_selection_and_items_on_interleaved_labels(toy_label_dataset):
    """Labels interleaved in the wrapped set; items come from the wrapped
    dataset's pipeline at the selected original indices."""
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(4), 30))
    base = toy_label_dataset(labels, image_size=2)
    ds = LongTailedDataset(base, imbalance_factor=10, seed=3)
    counts = [int(30 * 0.1**(i / 3)) for i in range(4)]
    assert ds.class_counts == counts
    # Independent reference: global indices per class, shuffled in class
    # order by one RandomState(3).
    state = np.random.RandomState(3)
    expected = []
    for c in range(4):
        idx = [k for k in range(len(labels)) if labels[k] == c]
        perm = state.permutation(len(idx))
        expected += [idx[p] for p in perm[:counts[c]]]
    assert [ds.get_ori_index(k) for k in range(len(ds))] == expected
    item = ds[5]
    assert item['toy_index'] == expected[5]
    assert item['gt_label'] == labels[expected[5]]
    assert int(item['img'][0, 0, 0]) == expected[5] % 256


def test_lazy_init_and_metainfo(toy_label_dataset):
    base = toy_label_dataset(np.repeat(np.arange(3), 10), lazy_init=True)
    ds = LongTailedDataset(base, imbalance_factor=5, lazy_init=True)
    assert not ds._fully_initialized
    assert ds.metainfo['classes'] == ['c0', 'c1', 'c2']
    ds.full_init()
    assert ds._fully_initialized and len(ds) == sum(ds.class_counts)
    # Built from a config dict via the registry.
    cfg_ds = DATASETS.build(
        dict(type='LongTailedDataset', dataset=base, imbalance_factor=5))
    assert cfg_ds.class_counts == ds.class_counts == [10, 4, 2]


@pytest.mark.parametrize('bad_if', [0.5, 0, -3, float('nan'), True, '10'])
def test_bad_imbalance_factor(toy_label_dataset, bad_if):
    base = toy_label_dataset([0, 1])
    with pytest.raises(ValueError, match='it must be a .*number >= 1') as err:
        LongTailedDataset(base, imbalance_factor=bad_if)
    assert f'LongTailedDataset: imbalance_factor={bad_if!r} is not ' \
        'allowed' in str(err.value)
    with pytest.raises(ValueError, match='imbalance_factor'):
        long_tailed_counts(10, 2, bad_if)


def test_bad_profile(toy_label_dataset):
    with pytest.raises(ValueError, match=r"profile='linear' is not allowed"):
        LongTailedDataset(toy_label_dataset([0, 1]), profile='linear')
    with pytest.raises(ValueError, match=r"profile='linear' is not allowed"):
        long_tailed_counts(10, 2, 10, profile='linear')


def test_class_with_too_few_images(toy_label_dataset):
    # Class 2 has 3 images but 'step' asks int(20 / 2) = 10 of it.
    labels = [0] * 20 + [1] * 20 + [2] * 3
    with pytest.raises(
            ValueError,
            match=r"class 2 \('c2'\) has 3 images, fewer than "
            r'its target count 10'):
        LongTailedDataset(
            toy_label_dataset(labels), imbalance_factor=2, profile='step')
    # With 'exp', class 1 of 3 (target int(20 * 0.5**0.5) = 14) has 5.
    labels = [0] * 20 + [1] * 5 + [2] * 10
    with pytest.raises(ValueError, match=r'class 1 .*has 5 images.*14'):
        LongTailedDataset(toy_label_dataset(labels), imbalance_factor=2)


def test_empty_class(toy_label_dataset):
    base = toy_label_dataset([0, 0, 2, 2], num_classes=3)
    for profile in ('exp', 'none'):
        with pytest.raises(
                ValueError, match=r"class 1 \('c1'\) has no images"):
            LongTailedDataset(base, imbalance_factor=1, profile=profile)


def test_target_rounds_to_zero(toy_label_dataset):
    base = toy_label_dataset(np.repeat(np.arange(2), 5))
    with pytest.raises(ValueError, match=r'class 1 .*would keep 0 images'):
        LongTailedDataset(base, imbalance_factor=10)


def test_bad_dataset_and_seed(toy_label_dataset):
    with pytest.raises(TypeError, match='dataset must be a dataset config'):
        LongTailedDataset(42)
    for seed in (-1, 2**32, 1.0):
        with pytest.raises(ValueError, match=rf'seed={seed!r} is not allowed'):
            LongTailedDataset(toy_label_dataset([0, 1]), seed=seed)
    assert LongTailedDataset(
        toy_label_dataset([0, 1]), imbalance_factor=1,
        seed=2**32 - 1).seed == 2**32 - 1
