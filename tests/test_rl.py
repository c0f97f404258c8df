"""On-the-fly FG-SBIR (Bhunia et al., CVPR 2020): metrics, ranks, rewards, Kendall tau, the RL algorithms, the
baselines and ``sbir onthefly`` on tiny data."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import nn

from sbir_core.cli import main
from sbir_core.config import ModelConfig, override, preset
from sbir_core.data import Sketch, load_dataset
from sbir_core.errors import ConfigError, DataError
from sbir_core.losses import build_loss
from sbir_core.metrics import onthefly_metrics, sketch_needed
from sbir_core.models import build_embedding_net, build_model
from sbir_core.onthefly_baselines import BASELINES, train_baseline
from sbir_core.rl import (ALGORITHMS, KL_BETA_RANGE, Episodes, GaussianPolicy, RLConfig, build_episodes, episode_ranks,
                          episodes_from_split, evaluate_policy, evaluate_supervised, global_reward, kendall_tau_b,
                          kendall_tau_distances, load_policy_run, override_rl, rank_of_target, step_rewards,
                          train_policies, train_policy)
from sbir_core.train import SplitTensors, test_ranks
from test_cli_train import write_tiny_v2
from test_data_loaders import make_v1


# --- metrics ----------------------------------------------------------------------------------------------------------
def test_onthefly_metrics_by_hand():
    ranks = np.array([[10, 6, 1, 1],  # in the top 5 from step 3 of 4 on: needs 3/4 of the sketch
                      [4, 7, 5, 6],  # leaves the top 5 at the end: needs the whole sketch
                      [3, 2, 1, 1]])  # from the first step: needs 1/4
    m = onthefly_metrics(ranks, gallery_size=10)
    assert m["m@A"] == pytest.approx((22 + 18 + 33) / 9 / 12)  # mean of (10 - rank) / 9 over all steps
    inv = [1 / 10, 1 / 6, 1, 1, 1 / 4, 1 / 7, 1 / 5, 1 / 6, 1 / 3, 1 / 2, 1, 1]
    assert m["m@B"] == pytest.approx(sum(inv) / 12)
    assert (m["A@1"], m["A@5"], m["A@10"]) == pytest.approx((2 / 3, 2 / 3, 1.0))
    assert m["mean_rank_per_step"] == pytest.approx([17 / 3, 5, 7 / 3, 8 / 3])
    assert m["sketch_needed"] == pytest.approx((3 / 4 + 1 + 1 / 4) / 3)
    assert m["sketch_saved"] == pytest.approx((1 / 4 + 0 + 3 / 4) / 3)
    assert sketch_needed(ranks).tolist() == [3 / 4, 1.0, 1 / 4]
    with pytest.raises(ValueError, match="1..10"):
        onthefly_metrics(np.array([[0, 1]]), 10)


# --- ranks, rewards, Kendall tau --------------------------------------------------------------------------------------
def test_rank_of_target_normalises_and_counts_ties_against_the_query():
    photos = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # photos 0 and 1 coincide
    actions = torch.tensor([[5.0, 0.0], [5.0, 0.0], [5.0, 0.0], [0.0, 0.3]])
    assert rank_of_target(actions, photos, torch.tensor([0, 1, 2, 2])).tolist() == [2, 2, 3, 1]


def test_each_reward_scheme_by_hand():
    ranks = torch.tensor([[1, 4, 10, 11]])
    expected = {"top1": [1, 0, 0, 0], "top5": [1, 1, 0, 0], "top10": [1, 1, 1, 0], "neg-rank": [-1, -4, -10, -11],
                "inv-sqrt-rank": [1, 0.5, 10 ** -0.5, 11 ** -0.5], "inv-rank": [1, 0.25, 0.1, 1 / 11]}
    for scheme, want in expected.items():
        assert step_rewards(ranks, scheme)[0].tolist() == pytest.approx(want), scheme


def test_eq4_global_term_by_hand():
    # gallery of 3: steps 0 and 1 rank photos 0 < 1 < 2, steps 2 and 3 reverse it
    distances = torch.tensor([[[0.0, 1, 2], [0, 1, 2], [2, 1, 0], [2, 1, 0]]])
    assert global_reward(torch.tensor([0.0, 1.0, 0.0])).tolist() == [0, -1, 0, 0]
    ranks = torch.tensor([[1, 1, 3, 3]])  # the true photo is photo 0
    rewards = step_rewards(ranks, "eq4", distances, g1=1.0, g2=0.5)
    assert rewards[0].tolist() == pytest.approx([1, 1 - 0.5, 1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="distances"):
        step_rewards(ranks, "eq4")


def test_kendall_tau_distance_by_hand():
    photos = torch.eye(4)
    # the closer an action's component, the nearer that photo: rank order 0,1,2,3, then 1,0,2,3 (one swapped pair of
    # 6: tau = 4/6, distance 1/6), then 3,2,1,0: the reverse of the first order, 5 of 6 pairs from the second
    actions = torch.tensor([[[4.0, 3, 2, 1], [3, 4, 2, 1], [1, 2, 3, 4]]])
    assert kendall_tau_distances(actions, photos)[0].tolist() == pytest.approx([1 / 6, 5 / 6])


def test_batched_kendall_tau_equals_scipy():
    rng = np.random.default_rng(0)
    cases = [rng.random((20, 50)), rng.integers(0, 4, (20, 30)).astype(float), rng.random((5, 2)),
             rng.integers(0, 2, (20, 3)).astype(float), np.r_[np.zeros((1, 6)), rng.random((1, 6))]]
    for x in cases:
        y = rng.permutation(x, axis=1) if len(x) > 1 else x[::-1]
        ours = kendall_tau_b(x, y)
        ref = [kendalltau(a, b).statistic for a, b in zip(x, y)]
        np.testing.assert_array_equal(ours, ref)  # bit for bit, NaN where a row is constant


# --- episodes ---------------------------------------------------------------------------------------------------------
def toy_episodes(q: int = 64, steps: int = 4, d: int = 8, g: int = 10, e: int = 4, seed: int = 0) -> Episodes:
    """Each sketch's features are a noisy copy of its photo's prototype at every step: the target is learnable."""
    gen = torch.Generator().manual_seed(seed)
    photos = F.normalize(torch.randn(g, e, generator=gen), dim=1)
    targets = torch.arange(q) % g
    protos = torch.randn(g, d, generator=gen)
    features = protos[targets][:, None, :] + 0.1 * torch.randn(q, steps, d, generator=gen)
    head = nn.Linear(d, e)
    with torch.no_grad():
        head.weight.copy_(torch.randn(e, d, generator=gen))
        head.bias.zero_()
    return Episodes(features, photos, targets, head.requires_grad_(False))


def tiny_run_config():
    return override(preset("book"), ["model.input_size=24", "train.data_size=28", "model.embed_dim=8"])


def test_split_final_layer_reproduces_both_heads():
    from sbir_core.models import split_final_layer

    x = torch.randn(3, 3, 24, 24)
    for head in ("pool", "mlp"):
        torch.manual_seed(0)
        net = build_embedding_net(ModelConfig(backbone="compact", input_size=24, head=head, hidden_dim=16,
                                               embed_dim=8)).eval()
        features, final = split_final_layer(net)
        torch.testing.assert_close(final(features(x)), net.head(net.backbone(x)), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="embed_dim"):
        split_final_layer(build_embedding_net(ModelConfig(backbone="compact", head="pool", embed_dim=None)))


def test_episodes_render_as_evaluation_does(tmp_path):
    data = load_dataset(write_tiny_v2(tmp_path / "tiny"))
    cfg = tiny_run_config()
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    episodes = episodes_from_split(model, cfg, data.test, steps=4, progress=False)
    assert episodes.features.shape[:2] == (4, 4) and episodes.photos.shape == (4, 8)
    # B1 at the last step (the whole sketch) ranks exactly as `sbir eval` (single view) does
    full = test_ranks(model, build_loss(cfg.loss, 8), SplitTensors.from_split(data.test, 28), cfg, multiview=False)
    assert evaluate_supervised(episodes)[:, -1].tolist() == full.tolist()
    first = episodes_from_split(model, cfg, data.test, steps=4, progress=False, first_photos=2)
    assert torch.equal(first.photos, episodes.photos[:2])
    keep = np.flatnonzero(np.asarray(data.test.positives) < 2)
    torch.testing.assert_close(first.features, episodes.features[keep])  # other batches: equal up to rounding
    assert first.targets.tolist() == episodes.targets[keep].tolist()
    with pytest.raises(DataError, match=r"/test/test-shoe_00_1: sketch has 5 points, fewer than the 20"):
        episodes_from_split(model, cfg, data.test, steps=20, progress=False)
    with pytest.raises(DataError, match="no sketches"):
        build_episodes(model, [], data.test.photos(28), [], size=24)
    with pytest.raises(DataError, match="no episodes"):
        Episodes(torch.zeros(0, 4, 3), torch.eye(3), torch.zeros(0, dtype=torch.long), nn.Linear(3, 3))


def test_episode_subset_keeps_the_photos_and_their_sketches():
    episodes = toy_episodes(q=30, g=10)  # sketch i belongs to photo i % 10
    sub = episodes.subset([7, 2])
    assert torch.equal(sub.photos, episodes.photos[[7, 2]])
    kept = [i for i in range(30) if i % 10 in (7, 2)]
    assert torch.equal(sub.features, episodes.features[kept])
    assert sub.targets.tolist() == [0 if i % 10 == 7 else 1 for i in kept]  # photo 7 is now photo 0
    # ranks within the smaller gallery: the same distances, fewer competitors
    full, small = evaluate_supervised(episodes)[kept], evaluate_supervised(sub)
    assert (small <= full).all() and (small <= 2).all()


def test_supervised_init_reproduces_the_supervised_ranks():
    episodes = toy_episodes()
    policy = GaussianPolicy.from_head(episodes.head, "supervised")
    assert torch.equal(evaluate_policy(policy, episodes), evaluate_supervised(episodes))
    assert not torch.equal(evaluate_policy(policy, episodes, deterministic=False), evaluate_supervised(episodes))


# --- algorithms -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_each_algorithm_runs_and_is_deterministic(algorithm):
    episodes = toy_episodes(q=8)
    cfg = RLConfig(algorithm=algorithm, reward="eq4", epochs=1, episodes_per_update=4, device="cpu", num_threads=1,
                   seed=3)
    (p1, h1), (p2, h2) = (train_policy(episodes, cfg, progress=False) for _ in range(2))
    assert len(h1) == 2 and h1 == h2
    assert all(torch.equal(a, b) for a, b in zip(p1.state_dict().values(), p2.state_dict().values()))
    assert not torch.equal(p1.mean.weight, episodes.head.weight)  # it learnt something
    p3, _ = train_policy(episodes, override_rl(cfg, ["seed=4"]), progress=False)
    assert not torch.equal(p1.mean.weight, p3.mean.weight)


def test_ppo_a_clip_increases_the_reward_where_it_must():
    episodes = toy_episodes()
    cfg = RLConfig(algorithm="ppo-a-clip", reward="inv-rank", init="random", log_std=-1.0, lr=1e-2, epochs=10,
                   device="cpu", num_threads=1)
    policy, history = train_policy(episodes, cfg, progress=False)
    first, last = (np.mean([row["reward"] for row in rows]) for rows in (history[:4], history[-4:]))
    assert last > first + 0.15
    torch.manual_seed(cfg.seed)
    start = GaussianPolicy.from_head(episodes.head, "random")  # the same random init
    before, after = ((1.0 / evaluate_policy(p, episodes).float()).mean().item() for p in (start, policy))
    assert after > before + 0.15


def test_ppo_kl_beta_stays_bounded_and_the_policy_finite():
    # a KL target far below what one Adam step gives: beta doubles every update until it meets its cap
    cfg = RLConfig(algorithm="ppo-a-kl", reward="inv-rank", kl_target=1e-9, lr=1e-2, epochs=5, device="cpu",
                   num_threads=1)
    policy, history = train_policy(toy_episodes(), cfg, progress=False)
    assert history[-1]["kl_beta"] == KL_BETA_RANGE[1]
    assert all(torch.isfinite(p).all() for p in policy.parameters())


def test_trpo_respects_its_kl_limit():
    cfg = RLConfig(algorithm="trpo", reward="inv-rank", max_kl=0.002, epochs=3, device="cpu", num_threads=1)
    _, history = train_policy(toy_episodes(), cfg, progress=False)
    assert all(row["kl"] <= cfg.max_kl for row in history)
    assert any(row["accepted"] for row in history) and max(row["kl"] for row in history) > 0.2 * cfg.max_kl


def test_rl_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="^nope: unknown"):
        override_rl(RLConfig(), ["nope=1"])
    with pytest.raises(ConfigError, match="^algorithm: 'ppo' is not one of"):
        train_policy(toy_episodes(q=4), RLConfig(algorithm="ppo"))


# --- baselines --------------------------------------------------------------------------------------------------------
def test_each_baseline_gives_ranks_per_step():
    episodes = toy_episodes(q=16)
    for name in BASELINES:
        heads = train_baseline(name, episodes, epochs=2, progress=False)
        ranks = episode_ranks(heads, episodes)
        assert ranks.shape == (16, 4) and ranks.min() >= 1 and ranks.max() <= 10
        assert len(heads.heads) == (4 if name == "B3" else 1)
        if name == "B1":
            assert torch.equal(ranks, evaluate_supervised(episodes))
        else:
            assert not torch.equal(heads.heads[0].weight, episodes.head.weight)


# --- command line -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("onthefly")
    data = write_tiny_v2(root / "tiny")
    run = root / "base"
    sets = ["train.epochs=1", "model.input_size=24", "train.data_size=28", "train.batch_size=4",
            "model.embed_dim=8", "train.val_fraction=0"]
    assert main(["train", "--data", str(data), "--out", str(run), "--device", "cpu",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    return data, run


def test_onthefly_train_then_eval(base_run, tmp_path, capsys):
    data, run = base_run
    out = tmp_path / "rl"
    assert main(["onthefly", "train", "--base", str(run), "--data", str(data), "--out", str(out), "--device", "cpu",
                 "--set", "steps=4", "--set", "epochs=2", "--set", "episodes_per_update=8",
                 "--set", "num_threads=1"]) == 0
    assert "trained ppo-a-clip (eq4 reward)" in capsys.readouterr().out
    record = json.loads((out / "config.json").read_text())
    assert record["rl"]["steps"] == 4 and record["base_run"] == str(run.resolve())
    assert record["device"] == "cpu: 1 threads"  # the run's own thread count, not torch's default
    assert record["command"].startswith(f"sbir onthefly train --base {run}")
    assert len((out / "history.jsonl").read_text().splitlines()) == 4  # 16 sketches / 8 per update x 2 epochs
    cfg, _, policy = load_policy_run(out)
    assert cfg.episodes_per_update == 8 and policy.log_std.shape == (8,)

    assert main(["onthefly", "eval", str(out), "--data", str(data), "--json", "--save", str(tmp_path / "r.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("RL", "B1"):
        assert {"m@A", "m@B", "A@1", "A@5", "A@10", "mean_rank_per_step", "sketch_saved"} <= set(result[name])
        assert len(result[name]["mean_rank_per_step"]) == 4
    assert result["n_queries"] == 4 and result["gallery_size"] == 4
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["metrics"] == {k: result[k] for k in ("RL", "B1")}
    assert saved["command"].startswith(f"sbir onthefly eval {out}")


def test_onthefly_bad_input_exits_2_with_one_line(base_run, tmp_path, capsys):
    data, run = base_run
    make_v1(tmp_path / "v1")
    cases = [
        (["--base", str(tmp_path / "norun"), "--data", str(data)], "config.json"),
        (["--base", str(run), "--data", str(tmp_path / "v1")], "no stroke data"),
        (["--base", str(run), "--data", str(data)], "sketch has 5 points, fewer than the 20 progressive steps"),
        (["--base", str(run), "--data", str(data), "--set", "nope=1"], "nope: unknown on-the-fly configuration"),
        (["--base", str(run), "--data", str(data), "--set", "gamma=2"], "gamma: must lie in [0, 1]"),
    ]
    for args, message in cases:
        assert main(["onthefly", "train", *args, "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2, message
        err = capsys.readouterr().err
        assert err.startswith("sbir: error:") and err.count("\n") == 1 and message in err, err
    assert main(["onthefly", "eval", str(tmp_path / "norl"), "--data", str(data)]) == 2
    assert "not an on-the-fly run folder (no config.json)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sketch_with_fewer_points_than_steps_is_named():
    cfg = tiny_run_config()
    model = build_model(cfg.model)
    sketch = Sketch.from_strokes([np.array([[10.0, 10], [50, 50]])])
    with pytest.raises(DataError, match="^my-key: sketch has 2 points, fewer than the 17"):
        build_episodes(model, [sketch], np.zeros((2, 28, 28, 3), np.uint8), [0], size=24, schedule="official17",
                       keys=["my-key"])


def test_train_policies_side_by_side_equals_one_by_one():
    episodes = toy_episodes()
    cfgs = [RLConfig(algorithm=a, reward="inv-rank", epochs=2, device="cpu", seed=s)
            for a, s in (("ppo-a-clip", 0), ("vpg", 1))]
    together = train_policies(episodes, cfgs, workers=2, progress=False)
    for cfg, (policy, history) in zip(cfgs, together):
        alone, alone_history = train_policy(episodes, dataclasses.replace(cfg, num_threads=1), progress=False)
        assert history == alone_history
        for a, b in zip(policy.state_dict().values(), alone.state_dict().values()):
            assert torch.equal(a, b)
