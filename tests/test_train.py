"""The triplet trainer on tiny in-memory data: sampling, crops, validation carving, learning, resuming, evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbir_core.config import RunConfig, override, preset
from sbir_core.train import (SplitTensors, carve_validation, eval_views, evaluate, fit, in_batch_pairs, load_run,
                             random_views, read_log, sample_triplets)


class FakeSplit:
    """The data contract in miniature: each photo is a random 4x4 block pattern, its sketches noisy copies of it."""

    def __init__(self, n_photos: int = 12, per_photo: int = 2, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.photo_names = [f"p{i}" for i in range(n_photos)]
        self.positives = np.repeat(np.arange(n_photos), per_photo)
        self.sketch_keys = [f"s{i}" for i in range(len(self.positives))]
        self._codes = rng.random((n_photos, 4, 4))
        self._noise = rng.random((len(self.positives), 4, 4)) * 0.3

    def __len__(self) -> int:
        return len(self.positives)

    @staticmethod
    def _up(code: np.ndarray, size: int) -> np.ndarray:
        return np.kron(code, np.ones((size // 4 + 1, size // 4 + 1)))[:size, :size]

    def sketch_rasters(self, size: int = 256) -> np.ndarray:
        return np.stack([np.clip(self._up(self._codes[p] + n, size), 0, 1)
                         for p, n in zip(self.positives, self._noise)]).astype(np.float32)

    def photos(self, size: int = 256) -> np.ndarray:
        g = np.stack([self._up(c, size) for c in self._codes])
        return (np.repeat((1 - g)[..., None], 3, -1) * 255).astype(np.uint8)


def tiny_config(**changes: str) -> RunConfig:
    sets = {"train.epochs": "4", "model.input_size": "24", "train.data_size": "28", "train.batch_size": "8",
            "model.hidden_dim": "32", "model.embed_dim": "16", "train.val_fraction": "0.25", "train.lr": "3e-3",
            "model.head": "mlp", "train.negatives": "random",
            **changes}
    return override(preset("book"), [f"{k}={v}" for k, v in sets.items()])


def test_sample_triplets_negative_never_positive_and_seeded():
    positives = torch.tensor([0, 0, 1, 2, 3, 3, 4])
    t1 = sample_triplets(positives, 5, torch.Generator().manual_seed(3))
    t2 = sample_triplets(positives, 5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(t1, t2)
    assert sorted(t1[:, 0].tolist()) == list(range(7))  # every sketch once
    assert (t1[:, 1] == positives[t1[:, 0]]).all()
    many = torch.cat([sample_triplets(positives, 5, torch.Generator().manual_seed(s)) for s in range(50)])
    assert (many[:, 2] != many[:, 1]).all()
    assert set(many[:, 2].tolist()) == set(range(5))


def test_in_batch_pairs_skip_the_same_photo():
    i, j = in_batch_pairs(torch.tensor([4, 7, 4]))
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]


def test_in_batch_negatives_train_and_resume_identically(tmp_path):
    split = FakeSplit()
    cfg = tiny_config(**{"train.negatives": "in-batch", "train.epochs": "3"})
    full = fit(cfg, split, tmp_path / "a", progress=False)
    fit(cfg, split, tmp_path / "b", progress=False, stop_after=1)
    resumed = fit(cfg, split, tmp_path / "b", progress=False)
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in full.model.state_dict().items())
    assert full.history[-1]["train_loss"] < full.history[0]["train_loss"]
    with pytest.raises(ValueError, match="negatives"):
        fit(tiny_config(**{"train.negatives": "hard"}), split, None, progress=False)


def test_crops_and_flips_are_exact():
    images = torch.arange(2 * 5 * 5, dtype=torch.uint8).view(2, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = random_views(images, 3, flip=False, gen=g)
    for b in range(2):  # each crop is a contiguous 3x3 window of its own image
        windows = [images[b, t:t + 3, l:l + 3] for t in range(3) for l in range(3)]
        assert any(torch.equal(out[b], w) for w in windows)
    views = eval_views(5, 3, multiview=True)
    assert len(views) == 10 and (1, 1, False) in views and (1, 1, True) in views and (2, 2, True) in views
    assert eval_views(5, 3, multiview=False) == [(1, 1, False)]


def test_validation_is_carved_by_photo():
    data = SplitTensors.from_split(FakeSplit(n_photos=10, per_photo=3), 8)
    train, val = carve_validation(data, 0.2, seed=0)
    assert (train.n_photos, val.n_photos) == (8, 2) and (len(train), len(val)) == (24, 6)
    assert not set(train.photo_names) & set(val.photo_names)
    for part in (train, val):  # positives still point at the right photo
        for i, p in enumerate(part.positives.tolist()):
            full = data.photo_names.index(part.photo_names[p])
            assert torch.equal(part.photos[p], data.photos[full])
    assert carve_validation(data, 0.0, seed=0)[1] is None


def test_training_learns_the_tiny_task(tmp_path):
    split = FakeSplit(n_photos=16, per_photo=3)
    cfg = tiny_config(**{"train.epochs": "1", "train.val_fraction": "0"})
    data = SplitTensors.from_split(split, cfg.train.data_size)
    before = fit(cfg, data, None, progress=False)  # one epoch only
    after = fit(tiny_config(**{"train.epochs": "15", "train.val_fraction": "0"}), data, None, progress=False)
    m_after = evaluate(after.model, after.loss, data, after_cfg := tiny_config())
    m_before = evaluate(before.model, before.loss, data, after_cfg)
    assert after.history[-1]["train_loss"] < after.history[0]["train_loss"]
    assert m_after["mean_rank"] < m_before["mean_rank"]
    assert m_after["acc@1"] >= 4 / 16  # chance is 1/16


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    split = FakeSplit()
    cfg = tiny_config()
    full = fit(cfg, split, tmp_path / "full", progress=False)
    part = fit(cfg, split, tmp_path / "resumed", progress=False, stop_after=2)
    assert len(part.history) == 2
    resumed = fit(cfg, split, tmp_path / "resumed", progress=False)
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    last_resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last_full[k], last_resumed[k]) for k in last_full)
    log_full, log_resumed = read_log(tmp_path / "full"), read_log(tmp_path / "resumed")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]  # noqa: E731
    assert strip(log_full) == strip(log_resumed) and len(log_full) == 4
    assert full.best == resumed.best


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    split = FakeSplit()
    a = fit(tiny_config(**{"train.epochs": "1"}), split, None, progress=False)
    b = fit(tiny_config(**{"train.epochs": "1"}), split, None, progress=False)
    c = fit(override(tiny_config(**{"train.epochs": "1"}), ["seed=1"]), split, None, progress=False)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_run_folder_round_trip_and_config_guard(tmp_path):
    split = FakeSplit()
    cfg = tiny_config(**{"train.epochs": "2"})
    result = fit(cfg, split, tmp_path, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert RunConfig.from_dict(saved) == cfg
    cfg2, model, loss = load_run(tmp_path)
    data = SplitTensors.from_split(split, cfg.train.data_size)
    assert evaluate(model, loss, data, cfg2) == evaluate(result.model, result.loss, data, cfg)
    with pytest.raises(ValueError, match=r"other settings \(train.epochs\)"):
        fit(tiny_config(**{"train.epochs": "3"}), split, tmp_path, progress=False)


def test_multiview_evaluation_averages_ten_views():
    split = FakeSplit()
    cfg = tiny_config(**{"train.epochs": "1"})
    result = fit(cfg, split, None, progress=False)
    data = SplitTensors.from_split(split, cfg.train.data_size)
    single, multi = evaluate(result.model, result.loss, data, cfg, False), evaluate(result.model, result.loss, data,
                                                                                    cfg, True)
    assert single["n_queries"] == multi["n_queries"] == 24 and single != multi


def test_holef_loss_parameters_are_trained():
    split = FakeSplit()
    cfg = tiny_config(**{"train.epochs": "2", "loss.name": "holef", "train.val_fraction": "0"})
    result = fit(cfg, split, None, progress=False)
    w = result.loss.state_dict()["weight"].cpu()
    assert w.shape == (16, 16) and not torch.equal(w, torch.eye(16))


def test_load_init_copies_matching_weights_and_names_the_rest(tmp_path):
    from sbir_core.config import ConfigError
    from sbir_core.models import build_model
    from sbir_core.train import load_init

    base = tiny_config()
    source = build_model(base.model)
    torch.save({"model": source.state_dict()}, tmp_path / "w.pt")
    same = build_model(base.model)
    assert load_init(same, tmp_path / "w.pt") == sorted(source.state_dict())
    for a, b in zip(same.state_dict().values(), source.state_dict().values()):
        torch.testing.assert_close(a, b)
    wider = build_model(tiny_config(**{"model.embed_dim": "24"}).model)  # the last layer's shape differs
    with pytest.warns(UserWarning, match=r"model.init: \d+ of \d+ tensors .* start fresh"):
        copied = load_init(wider, tmp_path / "w.pt")
    assert 0 < len(copied) < len(wider.state_dict())
    (tmp_path / "bad.pt").write_bytes(b"not weights")
    with pytest.raises(ConfigError, match=r"model.init: .*bad.pt does not load as saved weights"):
        load_init(same, tmp_path / "bad.pt")
    torch.save({"model": {"other": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="none of its weights fits this model"):
        load_init(same, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="model.init: no weights file"):
        fit(tiny_config(**{"model.init": str(tmp_path / "missing.pt")}), FakeSplit(), progress=False)


def test_fit_starts_from_model_init(tmp_path):
    first = fit(tiny_config(**{"train.epochs": "1"}), FakeSplit(), progress=False)
    torch.save({"model": first.model.state_dict()}, tmp_path / "w.pt")
    again = fit(tiny_config(**{"train.epochs": "1", "model.init": str(tmp_path / "w.pt")}), FakeSplit(),
                progress=False)
    fresh = fit(tiny_config(**{"train.epochs": "1"}), FakeSplit(), progress=False)
    assert again.history[0]["train_loss"] < fresh.history[0]["train_loss"]


def test_concat_offsets_positives_and_refuses_triplets():
    a, b = SplitTensors.from_split(FakeSplit(4), 28), SplitTensors.from_split(FakeSplit(3, seed=1), 28)
    both = SplitTensors.concat([a, b])
    assert both.n_photos == 7 and len(both) == len(a) + len(b)
    assert both.positives.tolist() == a.positives.tolist() + (b.positives + 4).tolist()
    torch.testing.assert_close(both.photos[4:], b.photos)
    with pytest.raises(ValueError, match="annotated triplets"):
        SplitTensors.concat([a, SplitTensors(b.sketches, b.photos, b.positives, b.photo_names,
                                             torch.zeros((1, 3), dtype=torch.int64))])


def test_edge_maps_are_black_lines_on_white():
    from sbir_core.data import edge_maps

    photos = np.full((2, 64, 64, 3), 230, dtype=np.uint8)
    photos[:, 16:48, 16:48] = (120, 30, 30)  # a dark square on a light background
    edges = edge_maps(photos)
    assert edges.shape == photos.shape and edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 255}
    assert (edges[:, 32, 32] == 255).all() and (edges[:, 5, 5] == 255).all()  # flat areas are white
    assert (edges[0, 10:54, 10:54, 0] == 0).sum() > 100  # the square's outline is drawn
    with pytest.raises(ValueError, match="uint8 photos"):
        edge_maps(photos[..., 0])
