"""Regression tests for the defects of the package audit (issue 9), each failing before its fix."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbir_core.config import ConfigError, override, preset, validate_config
from sbir_core.losses import LOSSES, build_loss
from sbir_core.models import build_model
from sbir_core.train import SplitTensors, fit, sample_annotated
from test_train import FakeSplit, tiny_config


def test_loss_parameters_get_no_weight_decay():
    cfg = tiny_config(**{"loss.name": "holef", "train.weight_decay": "0.01", "train.epochs": "1"})
    result = fit(cfg, FakeSplit(), progress=False)
    # W starts at I; its own regulariser keeps it there, and decay towards 0 would have shrunk the diagonal
    from sbir_core.train import _optimizer

    opt = _optimizer(cfg, result.model, result.loss)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert opt.param_groups[1]["params"][0] is result.loss.weight


def test_fit_restores_threads_and_determinism_flags():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    fit(tiny_config(**{"train.epochs": "1", "train.num_threads": "1"}), FakeSplit(), progress=False)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_checkpoint_saved_as_from_another_device_resumes(tmp_path):
    """A checkpoint loads to the CPU first: generator states stay CPU byte tensors whatever the map_location."""
    cfg = tiny_config()
    fit(cfg, FakeSplit(), tmp_path, device="cpu", stop_after=2, progress=False)
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    assert state["generator"].dtype == torch.uint8 and state["scaler"] == {} and "cuda_rng" in state
    resumed = fit(cfg, FakeSplit(), tmp_path, device="cpu", progress=False)
    straight = fit(cfg, FakeSplit(), device="cpu", progress=False)
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("change, key", [
    ({"train.data_size": "16"}, "train.data_size"), ({"train.optimizer": "rmsprop"}, "train.optimizer"),
    ({"loss.name": "contrastive"}, "loss.name"), ({"train.epochs": "0"}, "train.epochs"),
    ({"train.val_fraction": "1.5"}, "train.val_fraction"), ({"model.name": "nope"}, "model.name"),
    ({"train.negatives": "hard"}, "train.negatives")])
def test_bad_configurations_name_their_key(change, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        fit(tiny_config(**change), FakeSplit(), progress=False)


def test_override_and_from_dict_errors_name_the_key():
    with pytest.raises(ConfigError, match="^train.epochs: cannot read"):
        override(preset("book"), ["train.epochs=many"])
    with pytest.raises(ConfigError, match="^train.nope"):
        override(preset("book"), ["train.nope=1"])
    from sbir_core.config import RunConfig

    with pytest.raises(ConfigError, match="^train: unknown fields"):
        RunConfig.from_dict({"train": {"epochz": 3}})
    assert validate_config(preset("book")) is not None


def test_loss_registry_builds_every_loss():
    assert set(LOSSES) == {"triplet", "holef", "mahalanobis"}
    for name in LOSSES:
        assert hasattr(build_loss(preset("book").loss.__class__(name=name), 8), "pairwise")
    with pytest.raises(ConfigError, match="^loss.options"):
        build_loss(preset("book").loss.__class__(name="holef", options={"l3": 1.0}), 8)


def test_fusion_on_the_compact_backbone_fuses_an_earlier_map_and_is_not_renormalised():
    cfg = override(preset("book"), ["model.name=attention-fusion"]).model
    model = build_model(cfg).eval()
    assert model.sketch.backbone.at == "block3" and model.sketch.backbone.final == "block4"
    with torch.no_grad():
        v = model.embed_sketch(torch.randn(3, 3, 64, 64))
    # two L2-normalised parts, concatenated as the official DSSA code does: norm sqrt(2), not 1
    torch.testing.assert_close(v.norm(dim=1), torch.full((3,), 2 ** 0.5))
    plain = build_model(override(preset("book"), ["model.name=triplet-sn"]).model).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.embed_sketch(torch.randn(2, 3, 64, 64)).norm(dim=1), torch.ones(2))


def test_annotated_sampling_follows_the_annotation_and_mixes_easy_negatives():
    triplets = torch.tensor([[0, 1, 2], [0, 1, 3], [1, 4, 0], [2, 3, 1]])
    gen = torch.Generator().manual_seed(0)
    epochs = torch.cat([sample_annotated(triplets, 3, 6, 0.75, gen) for _ in range(200)])
    assert (epochs[:, 2] != epochs[:, 1]).all()
    annotated = {tuple(t) for t in triplets.tolist()}
    hard = np.mean([tuple(t) in annotated for t in epochs.tolist()])
    assert 0.7 < hard < 0.85  # 0.75 annotated, plus easy ones that happen to equal an annotated negative
    all_hard = sample_annotated(triplets, 3, 6, 1.0, torch.Generator().manual_seed(1))
    assert {tuple(t) for t in all_hard.tolist()} <= annotated and len(all_hard) == 3


def test_annotated_negatives_train_on_v1_like_data():
    split = FakeSplit()
    data = SplitTensors.from_split(split, 28)
    rows = [[i, int(p), int((p + 1) % 12)] for i, p in enumerate(split.positives)]
    data.triplets = torch.tensor(rows)
    result = fit(tiny_config(**{"train.negatives": "annotated", "train.epochs": "2"}), data, progress=False)
    assert len(result.history) == 2
    with pytest.raises(ConfigError, match="^train.negatives"):
        fit(tiny_config(**{"train.negatives": "annotated"}), FakeSplit(), progress=False)


def test_ranksvm_starts_and_stays_near_the_unlearned_ranking():
    from sbir_core.baselines import RankSVM

    rng = np.random.default_rng(0)
    photos = rng.random((30, 20))
    sketches = photos[np.repeat(np.arange(30), 2)] + rng.normal(0, 0.05, (60, 20))
    svm = RankSVM(lam=1.0).fit(sketches, photos, np.repeat(np.arange(30), 2))
    assert float((svm.w - 1).abs().mean()) < 0.5  # pulled towards w = 1, not towards 0


def test_resume_loads_checkpoints_to_the_cpu_whatever_the_device(tmp_path, monkeypatch):
    """The device-moving path: a checkpoint is read with map_location="cpu" (generator states must stay CPU byte
    tensors; the old map_location=device sent them to CUDA), and the scaler state of a CPU run is empty, which a CUDA
    run must not try to load."""
    cfg = tiny_config()
    fit(cfg, FakeSplit(), tmp_path, stop_after=1, progress=False)
    seen = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: seen.append(kw.get("map_location")) or real_load(*a, **kw))
    fit(cfg, FakeSplit(), tmp_path, progress=False)
    assert seen and set(seen) == {"cpu"}
    from sbir_core.train import _new_state

    st = _new_state(cfg, torch.device("cpu"))
    st.scaler = torch.amp.GradScaler("cuda", enabled=False)
    st.restore(real_load(tmp_path / "last.pt", map_location="cpu", weights_only=True))  # {} scaler: no error


def test_ranksvm_chooses_its_regulariser_on_held_out_photos():
    from sbir_core.baselines import LAMBDAS, RankSVM, select_lambda

    rng = np.random.default_rng(1)
    photos = rng.random((100, 12))
    positives = np.repeat(np.arange(100), 2)
    noise = rng.normal(0, 1.0, (200, 12))
    noise[:, :4] *= 0.02  # the first four features are reliable: a learned w can weight them up
    sketches = photos[positives] + noise
    lam = select_lambda(sketches, photos, positives)
    assert lam in LAMBDAS and lam < max(LAMBDAS)  # learning helps here, so a weak regulariser wins
    svm = RankSVM().fit(sketches, photos, positives)
    assert svm.lam == lam and float(svm.w[:4].mean()) > float(svm.w[4:].mean())
    junk = rng.random((200, 12))  # sketches unrelated to their photos: nothing to learn
    assert select_lambda(junk, photos, positives) in LAMBDAS


def test_progress_bars_honour_tqdm_disable(monkeypatch):
    from sbir_core.runtime import progress_disabled

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_disabled(True)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not progress_disabled(True) and progress_disabled(False)
    monkeypatch.delenv("TQDM_DISABLE")
    assert not progress_disabled()
