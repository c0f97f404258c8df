"""Adaptive FG-SBIR by meta-learning (issue 11): the inner loop, the learned margin, the regularisers, tasks, runs and
the ``sbir meta`` command line, on the tiny synthetic collection."""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sbir_core import meta
from sbir_core.cli import main
from sbir_core.config import override, preset
from sbir_core.data import load_collection
from sbir_core.data.synthetic import ensure_synthetic
from sbir_core.errors import ConfigError, DataError
from sbir_core.models import build_model
from sbir_core.train import SplitTensors

NET = ["model.input_size=24", "train.data_size=28", "model.embed_dim=8", "train.batch_size=8"]
TINY = dict(held_out=["mug"], shots=2, queries=2, tasks_per_batch=2, meta_steps=2, pretrain_epochs=1, device="cpu",
            num_threads=1)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return ensure_synthetic("tiny", 0, root=tmp_path_factory.mktemp("meta") / "tiny")


@pytest.fixture(scope="module")
def datasets(collection):
    return load_collection(collection)


@pytest.fixture(scope="module")
def run_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("run-cache")


@pytest.fixture(autouse=True)
def shared_run_cache(monkeypatch, run_cache):
    """One run cache for this module: the supervised start of the tiny collection trains once, not in every test."""
    monkeypatch.setenv("SBIR_CACHE", str(run_cache))


def tiny_learner(seed: int = 0) -> meta.MetaLearner:
    torch.manual_seed(seed)
    run = override(preset("book"), ["model.name=attention", *NET])
    return meta.MetaLearner(build_model(run.model), 3, F.normalize(torch.rand(3, 5), dim=1), 0.3)


def tiny_batch(t: int = 2, n: int = 4, seed: int = 0) -> meta.TaskBatch:
    g = torch.Generator().manual_seed(seed)
    return meta.TaskBatch(torch.randint(0, 256, (t, n, 28, 28), generator=g, dtype=torch.uint8),
                          torch.randint(0, 256, (t, n, 28, 28, 3), generator=g, dtype=torch.uint8),
                          torch.randint(0, 256, (t, n, 28, 28, 3), generator=g, dtype=torch.uint8),
                          torch.tensor([0, 2])[:t])


# --- the inner loop ---------------------------------------------------------------------------------------------------
def test_vmapped_inner_loop_equals_a_loop_over_tasks_with_autograd():
    """The meta-gradient through vmap(grad) is the second-order MAML gradient, task by task, margin included."""
    cfg = meta.meta_preset("ours", shots=2, queries=2, inner_steps=2, lambda_domain=0.0, lambda_class=0.0,
                           lambda_semantic=0.0)
    learner, batch = tiny_learner(), tiny_batch()
    loss, _ = meta.outer_loss(learner, batch, cfg, 24, torch.Generator().manual_seed(1))
    fast = torch.autograd.grad(loss, [learner.head.weight, *learner.margin_net.parameters()])

    # the same views (same generator), then a plain loop with torch.autograd.grad(create_graph=True)
    gen = torch.Generator().manual_seed(1)
    xs, xp, xn = (meta._views(x, 24, gen, photos=i > 0) for i, x in
                  enumerate((batch.sketches, batch.positives, batch.negatives)))
    f = learner.features(torch.cat([xs, xp, xn]).contiguous(memory_format=torch.channels_last))
    fs, fp, fn = (x.reshape(2, 4, -1) for x in f.chunk(3))
    total = 0
    for i in range(2):
        w, b = learner.head.weight, learner.head.bias
        margin = learner.predict_margin(fs[i, :2], fp[i, :2])
        for _ in range(2):
            e = [F.normalize(x[i, :2] @ w.T + b, dim=-1) for x in (fs, fp, fn)]
            inner = meta.soft_triplet(*e, margin, cfg.temperature)
            gw, gb = torch.autograd.grad(inner, [w, b], create_graph=True)
            w, b = w - cfg.inner_lr * gw, b - cfg.inner_lr * gb
        total = total + meta.triplet(*[F.normalize(x[i, 2:] @ w.T + b, dim=-1) for x in (fs, fp, fn)], 0.3)
    slow = torch.autograd.grad(total / 2, [learner.head.weight, *learner.margin_net.parameters()])
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert slow[-1].abs().sum() > 0  # the margin network's last bias: the predicted margin does get a gradient


def test_first_order_and_sign_updates_drop_the_gradient_of_the_gradient():
    params = {"weight": torch.randn(4, 3, requires_grad=True), "bias": torch.zeros(4, requires_grad=True)}
    grads = {k: v * 2 for k, v in params.items()}  # depends on the parameters
    for changes in ({"first_order": True}, {"inner_update": "sign"}):
        cfg = meta.meta_preset("anil", **changes)
        out = meta.inner_step(params, grads, cfg)["weight"].sum()
        (g,) = torch.autograd.grad(out, [params["weight"]], retain_graph=True)
        assert torch.equal(g, torch.ones(4, 3))  # only the identity path is left
    out = meta.inner_step(params, grads, meta.meta_preset("anil"))["weight"].sum()
    (g,) = torch.autograd.grad(out, [params["weight"]], retain_graph=True)
    torch.testing.assert_close(g, torch.full((4, 3), 1 - 2 * meta.MetaConfig().inner_lr))


@pytest.fixture(scope="module")
def tiny_run(datasets, run_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SBIR_CACHE", str(run_cache))
        return meta.build_meta_run(datasets, meta.meta_preset("ours", **TINY), override(preset("book"), NET),
                                   progress=False)


@pytest.mark.parametrize("what, lr", [("head", 0.1), ("all", 0.01)])
def test_adaptation_lowers_the_support_loss_and_zero_steps_change_nothing(datasets, tiny_run, what, lr):
    learner = tiny_run.learner
    train = SplitTensors.from_split(datasets["mug"].train, 28)
    support = meta.draw_support(train, 4, seed=0)
    x = [meta._centre(im, 24, photos=i > 0) for i, im in enumerate((support.sketches, support.positives,
                                                                    support.negatives))]
    cfg = meta.meta_preset("anil", inner_steps=5, inner_lr=lr)
    with torch.no_grad():
        before = meta.soft_triplet(*(learner.net(v) for v in x), 0.3, cfg.temperature)
        adapted = meta.adapt(learner, support, cfg, 24, what=what)
        after = meta.soft_triplet(*(adapted(v) for v in x), 0.3, cfg.temperature)
        assert after < 0.9 * before, (before, after)
        same = meta.adapt(learner, support, cfg, 24, steps=0, what=what)
        torch.testing.assert_close(same(x[0]), learner.net(x[0]))


def test_the_learned_margin_starts_at_the_fixed_one_and_moves():
    learner = tiny_learner()
    f = torch.randn(2, 3, learner.head.in_features)
    torch.testing.assert_close(learner.predict_margin(f, f), torch.full((2,), 0.3))
    cfg = meta.meta_preset("ours", shots=2, queries=2, lambda_domain=0.0, lambda_class=0.0, lambda_semantic=0.0)
    pool = meta.Pool("toy", SplitTensors(tiny_batch(1, 8).sketches[0], tiny_batch(1, 8).positives[0],
                                         torch.arange(8), [str(i) for i in range(8)]), 0, np.full(8, -1))
    meta.meta_train(learner, [pool], dataclasses.replace(cfg, meta_steps=5, outer_lr=1e-2), 24, progress=False)
    assert not torch.allclose(learner.predict_margin(f, f), torch.full((2,), 0.3))


def test_gradient_reversal_negates_the_gradient_only():
    x = torch.randn(5, requires_grad=True)
    y = meta.GradientReversal.apply(x)
    assert torch.equal(y, x)
    (g,) = torch.autograd.grad((y * 3).sum(), [x])
    assert torch.equal(g, torch.full((5,), -3.0))


def test_each_regulariser_is_finite_and_reaches_the_feature_extractor():
    learner, batch = tiny_learner(), tiny_batch()
    for level in ("category", "user"):
        cfg = meta.meta_preset("ours", level=level, shots=2, queries=2, lambda_domain=1.0, lambda_class=1.0,
                               lambda_semantic=1.0)
        _, row = meta.outer_loss(learner, batch, cfg, 24, torch.Generator().manual_seed(0))
        assert {"domain", "class", "semantic", "query_loss", "margin"} <= set(row)
        assert all(np.isfinite(v) for v in row.values())
        for name in ("domain", "class", "semantic"):
            only = {k: 0.0 for k in ("lambda_domain", "lambda_class", "lambda_semantic")}
            only[f"lambda_{name}"] = 1.0
            gen = torch.Generator().manual_seed(0)
            fs, fp, fn = (learner.features(meta._views(x, 24, gen, i > 0)).reshape(2, 4, -1)
                          for i, x in enumerate((batch.sketches, batch.positives, batch.negatives)))
            reg = meta.regularisers(learner, fs, fp, batch.categories, dataclasses.replace(cfg, **only), fn)
            (g,) = torch.autograd.grad(reg[name], [next(learner.net.backbone.parameters())],
                                       allow_unused=True)
            assert g is not None and g.abs().sum() > 0, (level, name)


# --- tasks and category embeddings ------------------------------------------------------------------------------------
def test_tasks_are_different_photos_with_a_negative_that_is_another_photo():
    data = SplitTensors(torch.zeros(12, 4, 4, dtype=torch.uint8), torch.zeros(6, 4, 4, 3, dtype=torch.uint8),
                        torch.arange(12) % 6, [str(i) for i in range(6)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        s, p, n = meta.draw_triplets(data, np.arange(12), 5, rng, "toy")
        assert len(set(p.tolist())) == 5 and np.all(p != n) and np.all(data.positives.numpy()[s] == p)
    with pytest.raises(DataError, match="^toy: 7 sketches of different photos were asked for, only 6"):
        meta.draw_triplets(data, np.arange(12), 7, rng, "toy")


def test_vocabulary_embeddings_share_directions_where_parts_are_shared():
    emb = meta.vocabulary_embeddings({"mug": {"handle": ["d-shape"], "rim": ["plain"]},
                                      "teapot": {"handle": ["loop"], "spout": ["short"]},
                                      "shoe": {"heel": ["flat"], "sole": ["thin"]}})
    v = {c: np.array(x) for c, x in emb.items()}
    assert all(abs(np.linalg.norm(x) - 1) < 1e-9 for x in v.values())
    assert v["mug"] @ v["teapot"] > 0 and v["mug"] @ v["shoe"] == 0


@pytest.mark.parametrize("content, message", [
    ("{broken", "cannot read the category embeddings"),
    ('{"mug": [1, 0]}', "no embedding for categories \\['shoe'\\]"),
    ('{"mug": [1, 0], "shoe": [NaN, 1]}', "the embedding of 'shoe' is not"),
    ('{"mug": [1, 0], "shoe": "x"}', "the embedding of 'shoe' is not"),
    ('{"mug": [1, 0], "shoe": [1, 0, 0]}', "differ in length"),
    ("[1, 2]", "must be a JSON object"),
])
def test_a_bad_embedding_file_is_named(tmp_path, content, message):
    path = tmp_path / "emb.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        meta.read_embedding_file(path, ["mug", "shoe"])
    assert str(path) in str(err.value)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="^method:"):
        meta.meta_preset("reptile")
    with pytest.raises(ConfigError, match="^margin: a learned margin"):
        meta.meta_preset("ours", first_order=True)
    with pytest.raises(ConfigError, match="^lambda_domain: the all-parameters inner loop"):
        meta.meta_preset("maml", lambda_domain=0.1)
    with pytest.raises(ConfigError, match="^margin: the all-parameters inner loop"):
        meta.meta_preset("maml", margin="learned")
    with pytest.raises(ConfigError, match="^nope: unknown meta-learning setting"):
        meta.override_meta(meta.MetaConfig(), ["nope=1"])
    with pytest.raises(ConfigError, match="^shots: must be positive"):
        meta.override_meta(meta.MetaConfig(), ["shots=0"])
    assert meta.override_meta(meta.MetaConfig(), ["held_out=mug, teapot"]).held_out == ["mug", "teapot"]
    assert meta.override_meta(meta.MetaConfig(), ['held_out=["3"]']).held_out == ["3"]


def test_study_hits_pair_seeds_and_queries():
    rows = [{"variant": "ours", "seed": s, "category": c, "shots": 5, "steps": n, "ranks": [1, 2 + n, 1]}
            for s in (1, 0) for c in ("b", "a") for n in (1, 3)]
    hits = meta.study_hits(rows, "ours", 5, steps=1)
    assert hits.shape == (2, 6) and hits.sum() == 8  # seeds in order, categories side by side; rank 1 only
    assert meta.study_hits(rows, "ours", 5, top=3, steps=1).all()
    with pytest.raises(ValueError, match="one per seed and category"):
        meta.study_hits(rows, "ours", 5)  # both numbers of steps: two rows per seed and category
    with pytest.raises(KeyError, match="no rows"):
        meta.study_hits(rows, "anil", 5)


# --- runs on the tiny collection --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pools(datasets):
    cfg = meta.meta_preset("ours", **TINY)
    return meta.usable_pools(meta.task_pools(datasets, cfg, 28, sorted(datasets)), cfg)


@pytest.mark.parametrize("method", sorted(meta.METHODS))
def test_each_method_meta_trains_deterministically(tiny_run, pools, method):
    cfg = meta.meta_preset(method, **TINY)
    assert "mug" not in [p.name for p in pools]
    runs = []
    for _ in range(2):
        learner = copy.deepcopy(tiny_run.learner)
        runs.append((learner, meta.meta_train(learner, pools, cfg, 24, progress=False)))
    (a, ha), (b, hb) = runs
    assert len(ha) == 2 and ha == hb
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
    changed = [not torch.equal(x, y) for x, y in zip(a.net.parameters(), tiny_run.learner.net.parameters())]
    assert changed[0] and changed[-1]  # the outer loop trains F and M in every method


def test_user_level_tasks_hold_out_drawers(datasets):
    run = override(preset("book"), NET)
    cfg = meta.meta_preset("ours", **{**TINY, "level": "user", "category": "shoe", "held_out": ["1"], "shots": 1,
                                      "queries": 1})
    result = meta.build_meta_run(datasets, cfg, run, progress=False)
    assert result.supervised["pools"] and all(p.startswith("shoe/drawer ") for p in result.supervised["pools"])
    assert "shoe/drawer 1" not in result.supervised["pools"]
    pools = meta.usable_pools(meta.task_pools(datasets, cfg, 28, result.categories), cfg)
    start = meta.supervised_split(pools, "user")  # the seen drawers' sketches against the one shoe gallery
    shoes = SplitTensors.from_split(datasets["shoe"].train, 28)
    assert start.n_photos == shoes.n_photos and len(start) == sum(len(p.data) for p in pools)
    res = meta.adaptation_result(result, datasets["shoe"], shots=1, drawer=1)
    drawers = meta.sketch_drawers(datasets["shoe"], "test")
    assert res["after"]["n_queries"] == int((drawers == 1).sum())


def test_save_and_load_give_the_same_embeddings(datasets, tiny_run, tmp_path):
    result = tiny_run
    meta.save_meta_run(tmp_path, result)
    loaded = meta.load_meta_run(tmp_path)
    x = torch.rand(2, 3, 24, 24)
    torch.testing.assert_close(loaded.learner.net(x), result.learner.net(x), rtol=0, atol=0)
    assert loaded.meta == result.meta and loaded.categories == result.categories
    a = meta.adaptation_result(result, datasets["mug"], shots=2)
    assert a == meta.adaptation_result(loaded, datasets["mug"], shots=2)


def test_meta_train_then_adapt_from_the_command_line(collection, tmp_path, capsys):
    out = tmp_path / "run"
    sets = [*NET, "held_out=mug", "shots=2", "queries=2", "tasks_per_batch=2", "meta_steps=2", "pretrain_epochs=1",
            "num_threads=1"]
    assert main(["meta", "train", "--data", str(collection), "--out", str(out), "--device", "cpu",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    assert "meta-trained ours (category level" in capsys.readouterr().out
    record = json.loads((out / meta.META_RUN).read_text())
    assert record["command"].startswith("sbir meta train --data") and record["meta"]["held_out"] == ["mug"]
    assert main(["meta", "adapt", str(out), "--data", str(collection / "mug"), "--shots", "2", "--json",
                 "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["before"]) >= {"acc@1", "acc@5", "acc@10"} and res["shots"] == 2
    assert res["seen_in_meta_training"] is False
    assert main(["meta", "adapt", str(out), "--data", str(collection / "mug"), "--shots", "1",
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "before" in text and "after" in text
    assert main(["meta", "adapt", str(out), "--data", str(collection / "mug"), "--shots", "1", "2", "--seeds", "0",
                 "1", "--json", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["shots"], r["seed"]) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]

    def refused(argv, message):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err

    mug = str(collection / "mug")
    refused(["meta", "adapt", str(out), "--data", mug, "--shots", "999"], "shots: 999 support pairs")
    refused(["meta", "adapt", str(tmp_path), "--data", mug, "--shots", "1"], str(tmp_path / meta.META_RUN))
    refused(["meta", "adapt", str(out), "--data", str(collection), "--shots", "1"], str(collection))
    refused(["meta", "train", "--data", str(collection), "--out", str(out)], "already holds a meta-learning run")
    refused(["meta", "train", "--data", str(collection), "--out", str(tmp_path / "x"), "--set", "held_out=lamp2"],
            "held_out: categories ['lamp2']")
    refused(["meta", "train", "--data", str(collection), "--out", str(tmp_path / "x"), "--method", "reptile"],
            "method: 'reptile'")
    (out / meta.WEIGHTS).write_bytes(b"truncated")
    refused(["meta", "adapt", str(out), "--data", mug, "--shots", "1"], str(out / meta.WEIGHTS))


def test_meta_train_takes_several_data_folders_and_adapt_runs_the_fine_tuning_baselines(collection, tmp_path,
                                                                                        capsys):
    out = tmp_path / "base"
    sets = [*NET, "held_out=mug", "shots=2", "queries=2", "meta_steps=0", "pretrain_epochs=1", "num_threads=1"]
    # the collection, and one of its categories again as a dataset folder: that name twice is refused
    assert main(["meta", "train", "--data", str(collection), "--data", str(collection / "lamp"), "--out", str(out),
                 "--device", "cpu", *[a for s in sets for a in ("--set", s)]]) == 2
    assert "dataset names ['lamp'] appear twice" in capsys.readouterr().err
    assert main(["meta", "train", "--data", str(collection), "--out", str(out), "--device", "cpu",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    capsys.readouterr()
    for what, lr in (("head", "0.05"), ("all", "0.001")):
        assert main(["meta", "adapt", str(out), "--data", str(collection / "mug"), "--shots", "2", "--adapt", what,
                     "--lr", lr, "--steps", "3", "--json", "--device", "cpu"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["adapted"] == what and res["lr"] == float(lr) and res["steps"] == 3
    assert main(["meta", "adapt", str(out), "--data", str(collection / "mug"), "--shots", "2", "--lr", "0"]) == 2
    assert "--lr: must be positive" in capsys.readouterr().err
