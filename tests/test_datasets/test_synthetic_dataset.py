"""SyntheticImageDataset: deterministic generated images, clear errors."""
import numpy as np
import pytest
from tool_runner import python_tool, run

from mmlt_hybrid.datasets import SyntheticImageDataset


def test_layout_labels_and_determinism():
    data = SyntheticImageDataset(
        num_classes=3, images_per_class=4, image_size=8, seed=5)
    assert len(data) == 12
    assert data.metainfo['classes'] == ('class_0', 'class_1', 'class_2')
    # Grouped by class in label order.
    assert [data.get_cat_ids(i)[0] for i in range(12)] == [0] * 4 + [1] * 4 \
        + [2] * 4
    img = data[0]['img']
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    again = SyntheticImageDataset(
        num_classes=3, images_per_class=4, image_size=8, seed=5)
    assert all(
        np.array_equal(data[i]['img'], again[i]['img']) for i in range(12))
    test = SyntheticImageDataset(
        num_classes=3, images_per_class=4, image_size=8, seed=5, split='test')
    assert not any(
        np.array_equal(data[i]['img'], test[i]['img']) for i in range(12))


def test_classes_are_told_apart_by_their_mean_colour():
    """Each class has its own colour: nearest class mean classifies test
    images far above chance (1/5)."""
    train = SyntheticImageDataset(num_classes=5, images_per_class=20)
    test = SyntheticImageDataset(
        num_classes=5, images_per_class=20, split='test')

    def colour(data, i):
        return data[i]['img'].reshape(-1, 3).mean(0)

    means = np.stack([
        np.mean([colour(train, i) for i in range(c * 20, c * 20 + 20)], 0)
        for c in range(5)
    ])
    hits = sum(
        int(np.argmin(((means - colour(test, i))**2).sum(1)) == i // 20)
        for i in range(len(test)))
    assert hits / len(test) > 0.6


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_classes=0), 'SyntheticImageDataset: num_classes=0 is not '
     'allowed; it must be an integer >= 1'),
    (dict(images_per_class=2.5), 'images_per_class=2.5 is not allowed'),
    (dict(image_size=-1), 'image_size=-1 is not allowed'),
    (dict(num_classes=True), 'num_classes=True is not allowed'),
    (dict(split='val'), r"split='val' is not allowed; it must be one of "
     r"\('train', 'test'\)"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticImageDataset(**kwargs)


def test_real_data_benchmark_names_a_missing_data_root(tmp_path):
    result = run(
        python_tool('benchmarks/cifar10lt_short.py', '--data-root',
                    tmp_path / 'nowhere', '--epochs', '1'),
        check=False)
    assert result.returncode != 0
    assert 'nowhere' in result.stderr and 'train/' in result.stderr
