"""Checkpoints on CUDA (issue 9): resume equals an uninterrupted run, and checkpoints move between CPU and CUDA.

Skipped where torch sees no GPU (CI has none); run with ``pytest tests/test_cuda.py`` on a machine that has one.
"""
from __future__ import annotations

import pytest
import torch

from sbir_core.train import fit, read_log
from test_train import FakeSplit, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x.cpu(), y.cpu()), name


@pytest.mark.parametrize("amp", ["true", "false"])
def test_resume_on_cuda_equals_an_uninterrupted_run(tmp_path, amp):
    cfg = tiny_config(**{"train.amp": amp, "train.epochs": "4"})
    full = fit(cfg, FakeSplit(), tmp_path / "full", device="cuda", progress=False)
    fit(cfg, FakeSplit(), tmp_path / "resumed", device="cuda", stop_after=2, progress=False)
    state = torch.load(tmp_path / "resumed" / "last.pt", map_location="cpu", weights_only=True)
    assert len(state["cuda_rng"]) == torch.cuda.device_count() and state["cuda_rng"][0].dtype == torch.uint8
    resumed = fit(cfg, FakeSplit(), tmp_path / "resumed", device="cuda", progress=False)
    _same_weights(full.model, resumed.model)
    curve = [(r["train_loss"], r.get("val_acc@1")) for r in read_log(tmp_path / "full")]
    assert curve == [(r["train_loss"], r.get("val_acc@1")) for r in read_log(tmp_path / "resumed")]


@pytest.mark.parametrize("first, second", [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_checkpoint_moves_between_devices(tmp_path, first, second):
    cfg = tiny_config(**{"train.amp": "true", "train.epochs": "3"})
    fit(cfg, FakeSplit(), tmp_path, device=first, stop_after=1, progress=False)
    moved = fit(cfg, FakeSplit(), tmp_path, device=second, progress=False)
    assert len(moved.history) == 3 and next(moved.model.parameters()).device.type == second
    assert all(torch.isfinite(p).all() for p in moved.model.parameters())


# --- on-the-fly retrieval (issue 10) on CUDA --------------------------------------------------------------------------
from sbir_core.onthefly_baselines import BASELINES, train_baseline  # noqa: E402
from sbir_core.rl import ALGORITHMS, RLConfig, episode_ranks, evaluate_policy, train_policies, train_policy  # noqa: E402
from test_rl import toy_episodes  # noqa: E402


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_each_rl_algorithm_trains_on_cuda_and_repeats_itself(algorithm):
    cfg = RLConfig(algorithm=algorithm, reward="eq4", epochs=2, episodes_per_update=4, device="cuda", seed=3)
    episodes = toy_episodes(q=16)
    (p1, h1), (p2, h2) = (train_policy(episodes, cfg, progress=False) for _ in range(2))
    assert next(p1.parameters()).device.type == "cuda" and h1 == h2
    _same_weights(p1, p2)
    assert all(torch.isfinite(p).all() for p in p1.parameters())
    ranks = evaluate_policy(p1, episodes.to("cuda"))
    assert ranks.shape == (16, 4) and int(ranks.min()) >= 1


def test_rl_on_cuda_learns_as_on_the_cpu():
    """Another device takes another float path, so not the same bits: the same reward gain, within a tolerance."""
    rewards = {}
    for device in ("cpu", "cuda"):
        cfg = RLConfig(algorithm="ppo-a-clip", reward="inv-rank", init="random", log_std=-1.0, lr=1e-2, epochs=10,
                       device=device, num_threads=1 if device == "cpu" else None)
        _, history = train_policy(toy_episodes(), cfg, progress=False)
        rewards[device] = [sum(r["reward"] for r in rows) / len(rows) for rows in (history[:4], history[-4:])]
    assert rewards["cuda"][1] > rewards["cuda"][0] + 0.15
    assert abs(rewards["cuda"][1] - rewards["cpu"][1]) < 0.1


def test_train_policies_on_cuda_runs_them_one_after_the_other():
    cfgs = [RLConfig(algorithm="vpg", reward="inv-rank", epochs=1, device="cuda", seed=s) for s in (0, 1)]
    together = train_policies(toy_episodes(), cfgs, progress=False)
    alone, _ = train_policy(toy_episodes(), cfgs[1], progress=False)
    _same_weights(together[1][0], alone)


def test_each_onthefly_baseline_trains_on_cuda():
    episodes = toy_episodes(q=16).to("cuda")
    for name in BASELINES:
        heads = train_baseline(name, episodes, epochs=2, progress=False)
        ranks = episode_ranks(heads, episodes)
        assert ranks.shape == (16, 4) and int(ranks.min()) >= 1 and int(ranks.max()) <= 10
