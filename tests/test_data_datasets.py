"""Torch datasets: triplets never pair a sketch with its own photo as the negative; progressive and few-shot shapes."""
import numpy as np
import pytest
import torch

from sbir_core.data import load_collection, load_dataset
from sbir_core.data.datasets import FewShotTasks, ProgressiveDataset, TripletDataset
from sbir_core.data.synthetic import generate
from sbir_core.errors import DataError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("ds") / "tiny", profile="tiny", seed=0, categories=["shoe", "chair"],
                    workers=1)


def test_negatives_are_never_the_positive():
    positives = np.repeat(np.arange(5), 4)  # several sketches per photo, as in QMUL-V2
    for seed in range(50):
        neg = TripletDataset.draw_negatives(positives, 5, np.random.default_rng(seed))
        assert (neg != positives).all() and neg.min() >= 0 and neg.max() < 5
    counts = np.bincount(TripletDataset.draw_negatives(np.zeros(20000, int), 5, np.random.default_rng(0)), minlength=5)
    assert counts[0] == 0 and counts[1:].min() > 4700  # uniform over the other photos


def test_triplet_dataset(root):
    split = load_dataset(root / "shoe").train
    ds = TripletDataset(split, size=32, seed=1)
    a, p, n = ds[0]
    assert a.shape == (1, 32, 32) and p.shape == n.shape == (3, 32, 32)
    assert a.max() <= 1 and p.dtype == torch.float32 and 0 <= float(p.min()) and float(p.max()) <= 1
    assert torch.equal(p, ds.photos[split.positives[0]])
    first = ds._negatives.copy()
    ds.set_epoch(1)
    assert not np.array_equal(first, ds._negatives)
    ds.set_epoch(0)
    assert np.array_equal(first, ds._negatives)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert [t.shape[0] for t in batch] == [4, 4, 4]


def test_progressive_dataset(root):
    split = load_dataset(root / "chair").test
    ds = ProgressiveDataset(split, steps=20, size=32)
    steps, photo = ds[0]
    assert steps.shape == (20, 1, 32, 32) and photo == int(split.positives[0])
    ink = steps.sum(dim=(1, 2, 3))
    assert (ink[1:] >= ink[:-1] - 1e-3).all() and ink[0] < ink[-1]
    assert torch.allclose(steps[-1, 0], torch.from_numpy(split.sketch_rasters(32, [0])[0]), atol=1 / 255)
    assert ProgressiveDataset(split, schedule="official17", size=32)[0][0].shape[0] == 17


def test_few_shot_tasks(root):
    collection = load_collection(root)
    tasks = FewShotTasks(collection, by="category", k=3, size=32, seed=0)
    assert tasks.names == ["chair", "shoe"] and len(tasks) == 2
    task = next(iter(tasks))
    test = collection["chair"].test
    assert task.support_sketches.shape == (3, 1, 32, 32) and task.support_photos.shape == (3, 3, 32, 32)
    assert task.gallery.shape == (test.n_photos, 3, 32, 32) and len(task.query_sketches) == len(test)
    again = next(iter(FewShotTasks(collection, by="category", k=3, size=32, seed=0)))
    assert torch.equal(task.support_sketches, again.support_sketches)

    by_drawer = FewShotTasks(collection["shoe"], by="drawer", k=1, size=32)
    assert len(by_drawer) >= 2 and all(name.startswith("drawer") for name in by_drawer.names)
    with pytest.raises(DataError, match="fewer than k=50"):
        FewShotTasks(collection, k=50)
