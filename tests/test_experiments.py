"""sbir experiment: named experiments as resumable jobs through submitit, and their records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sbir_core import experiments
from sbir_core.cli import main
from sbir_core.config import ConfigError
from sbir_core.errors import DataError
from sbir_core.experiments import (Claim, Experiment, Pretraining, Profile, Variant, plan, plan_pretraining,
                                   run_experiment, run_jobs)

TINY = Experiment("tiny", "two variants, a few photos, one epoch",
                  {"Base": Variant(("model.name=triplet-sn",)), "Full": Variant(("model.name=attention-fusion",))},
                  (Claim("Full improves on Base", "Full", "Base"),),
                  {"tiny": Profile(("train.epochs=1",), 16, (0, 1))})
# Staged pretraining in miniature: pretrain on every category of the tiny synthetic collection (edge-map photos),
# then (a second stage) on the training split of its shoe folder, fine-tune on its chair folder, against HOG + rankSVM.
STAGED = Experiment("staged", "pretrained against from scratch and HOG + rankSVM",
                    {"HOG": Variant(dataset="chair", method="hog-ranksvm"),
                     "scratch": Variant(dataset="chair"),
                     "pretrained": Variant(dataset="chair", photos="edges", pretrained="tiny synthetic"),
                     "two stages": Variant(dataset="chair", photos="edges", pretrained="then shoes")},
                    (Claim("pretraining helps", "pretrained", "scratch"), Claim("beats HOG", "pretrained", "HOG")),
                    {"tiny": Profile(("train.epochs=1", "train.batch_size=4"), None, (0,))},
                    data="a synthetic collection", pretrainings={
                        "tiny synthetic": Pretraining(("train.epochs=1",), collection="tiny", photos="edges"),
                        "then shoes": Pretraining(("train.epochs=1", "train.batch_size=4"), photos="edges",
                                                  datasets=("shoe",), start="tiny synthetic")})


@pytest.fixture()
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", TINY)
    monkeypatch.setitem(experiments.EXPERIMENTS, "staged", STAGED)
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path / "cache"))  # never the repository's run cache
    return tmp_path / "out"


@pytest.fixture()
def real_root(tmp_path: Path) -> Path:
    """An empty stand-in for ``--data`` of the real-data studies: the QMUL folders they plan over."""
    for folder in (experiments.CHAIR_V2, experiments.SHOE_V1, experiments.CHAIR_V1):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def test_plan_names_every_variant_and_seed(tiny: Path) -> None:
    jobs = plan("tiny", "tiny", tiny)
    assert [(j.variant, j.seed) for j in jobs] == [("Base", 0), ("Base", 1), ("Full", 0), ("Full", 1)]
    assert jobs[3].path == str(tiny / "jobs" / "full__seed1.json") and jobs[0].preset == "book"
    assert [j.seed for j in plan("tiny", "tiny", tiny, seeds=[5])] == [5, 5]
    with pytest.raises(ConfigError, match="experiment: 'nope' is not one of"):
        plan("nope", "tiny", tiny)
    with pytest.raises(ConfigError, match="profile: 'huge' is not one of tiny"):
        plan("tiny", "huge", tiny)


def test_run_writes_a_record_and_resumes(tiny: Path) -> None:
    record = run_experiment("tiny", "tiny", tiny, executor="debug", command="sbir experiment run tiny")
    assert record["seeds"] == [0, 1] and set(record["variants"]) == {"Base", "Full"}
    full = record["variants"]["Full"]
    assert len(full["acc@1"]) == 2 and full["train_sketches"] > 0 and full["photos"] == "rgb"
    low, high = full["acc@1_interval"]
    assert low <= np.mean(full["acc@1"]) <= high
    assert full["queries"] > full["gallery"] > 0 and record["pretrainings"] == {}
    (claim,) = record["claims"]
    assert claim["verdict"] in ("reproduced", "contradicted", "not resolved")
    assert claim["low"] <= claim["difference"] <= claim["high"] and claim["resolvable"] > 0
    assert claim["query_floor"] >= 0
    assert record["provenance"]["command"] == "sbir experiment run tiny" and record["provenance"]["commit"]
    assert record["provenance"]["cached_jobs"] == 0, "a fresh run cache"
    assert record["provenance"]["jobs_run"] == 4
    assert json.loads((tiny / "record.json").read_text()) == record
    table = experiments.markdown(record)
    assert "| Full | " in table and "| Full improves on Base | " in table and "| seeds for ± 2 |" in table
    assert set(record["attention"]) == {"Full"}, "only a model with attention is scored"
    sketches = record["attention"]["Full"]["sketch"]
    assert len(sketches["peak_in_part"]) == len(sketches["untrained"]) == 2 and sketches["scored"] > 0
    assert 0 < sketches["chance_uniform"] < sketches["chance_on_object"] < 1
    assert sketches["vs_chance"]["low"] <= sketches["vs_chance"]["difference"] <= sketches["vs_chance"]["high"]
    assert sketches["verdict"] == "no verdict" and "below the" in sketches["reason"], "one epoch does not retrieve"
    assert f"| Full | {sketches['scored']} sketches | " in table and " photos | " in table
    jobs = plan("tiny", "tiny", tiny)
    assert run_jobs(jobs, tiny, "debug") == [], "every job has its result: nothing runs again"
    Path(jobs[2].path).unlink()  # a job that did not finish
    assert run_experiment("tiny", "tiny", tiny, executor="debug")["provenance"]["jobs_run"] == 1, "it resumes"
    assert json.loads(Path(jobs[2].path).read_text())["cached"], "its model comes from the run cache"
    picture = tiny / "record.png"
    assert main(["experiment", "plot", str(tiny / "record.json"), "--to", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tiny / "bad.json").write_text('{"variants": {}}')
    assert main(["experiment", "plot", str(tiny / "bad.json"), "--to", str(tiny / "bad.png")]) == 2
    assert not (tiny / "bad.png").exists()


def test_local_executor_runs_jobs_in_processes(tiny: Path) -> None:
    pytest.importorskip("submitit")
    jobs = plan("tiny", "tiny", tiny, seeds=[0])
    assert run_jobs(jobs, tiny, "local", workers=2) == jobs
    assert all(json.loads(Path(j.path).read_text())["variant"] == j.variant for j in jobs)
    assert list((tiny / "submitit").iterdir()), "submitit keeps each job's logs"


def test_cli_lists_and_refuses_an_unknown_experiment(capsys: pytest.CaptureFixture) -> None:
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert "ijcv-table4" in out and "claim: HOLEF improves on Euclidean" in out
    assert ("pretraining 'then Chair-V2 and Chair-V1': the training splits of qmul/ChairV2, qmul-v1/chairs, from "
            "'synthetic, edge maps', edges photos") in out
    assert main(["experiment", "run", "nope"]) == 2
    assert "sbir: error: experiment: 'nope' is not one of" in capsys.readouterr().err
    assert main(["experiment", "run", "pretraining"]) == 2  # its first profile, cpu; real data it must be given
    assert "sbir: error: --data: experiment pretraining needs --data: a folder holding" in capsys.readouterr().err


def test_staged_pretraining_starts_fine_tuning_from_its_weights(tiny: Path) -> None:
    from sbir_core.data.synthetic import ensure_synthetic

    root = ensure_synthetic("tiny", 0)
    with pytest.raises(ConfigError, match="--data: experiment staged needs --data: a synthetic collection"):
        plan("staged", "tiny", tiny)
    with pytest.raises(DataError, match="nowhere/shoe: dataset folder of pretraining 'then shoes' not found"):
        plan("staged", "tiny", tiny, data_root=tiny / "nowhere")
    with pytest.raises(DataError, match="nowhere: dataset folder of 'Base' not found"):
        plan("tiny", "tiny", tiny, data_root=tiny / "nowhere")
    with pytest.raises(ConfigError, match="photos: 'edge' is not one of rgb, edges"):
        Variant(photos="edge")
    with pytest.raises(ConfigError, match="method: hog-ranksvm trains no network"):
        Variant(("train.epochs=3",), method="hog-ranksvm")
    with pytest.raises(ConfigError, match="--data: experiment staged needs --data: a synthetic collection"):
        plan_pretraining("staged", tiny)  # its second stage reads a dataset folder
    jobs = plan("staged", "tiny", tiny, data_root=root)
    pre, then = plan_pretraining("staged", tiny, data_root=root)
    assert [j.method for j in jobs] == ["hog-ranksvm", "train", "train", "train"]
    assert jobs[2].init == pre.weights and jobs[1].init is None and jobs[2].photos == "edges"
    assert then.init == pre.weights and jobs[3].init == then.weights and then.datasets == (str(root / "shoe"),)
    record = run_experiment("staged", "tiny", tiny, data_root=root, executor="debug")
    stage_one, stage_two = record["pretrainings"]["tiny synthetic"], record["pretrainings"]["then shoes"]
    assert stage_one["photos"] == "edges" and len(stage_one["categories"]) == 12 and stage_one["train_sketches"] > 150
    assert stage_two["categories"] == ["shoe"] and stage_two["config"]["model"]["init"] == pre.weights
    assert 0 < stage_two["train_sketches"] < stage_one["train_sketches"] / 6
    assert record["configs"]["pretrained"]["model"]["init"] == pre.weights
    assert record["configs"]["two stages"]["model"]["init"] == then.weights
    assert record["configs"]["scratch"]["model"]["init"] is None
    assert record["configs"]["HOG"]["method"] == "dense HOG + rankSVM"
    assert {c["verdict"] for c in record["claims"]} <= {"reproduced", "contradicted", "not resolved"}
    assert record["variants"]["HOG"]["gallery"] == record["variants"]["scratch"]["gallery"] == 4


def test_jobs_that_need_no_pretraining_run_beside_it(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sbir_core.data.synthetic import ensure_synthetic

    batches = []
    monkeypatch.setattr(experiments, "run_jobs", lambda jobs, *a, **k: batches.append([j.variant for j in jobs]) or [])
    monkeypatch.setattr(experiments, "summarise", lambda *a, **k: {})
    run_experiment("staged", "tiny", tiny, data_root=ensure_synthetic("tiny", 0), executor="debug")
    assert batches == [["tiny synthetic", "HOG", "scratch"], ["then shoes", "pretrained"], ["two stages"]]


def test_pretraining_stages_must_name_a_stage_and_not_start_from_each_other(tiny: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    stage = Pretraining(("train.epochs=1",), start="nowhere")
    monkeypatch.setitem(experiments.EXPERIMENTS, "staged", replace(STAGED, pretrainings={"a": stage}))
    with pytest.raises(ConfigError, match="start: 'a' starts from 'nowhere', which is not one of a"):
        plan_pretraining("staged", tiny)
    loop = {"a": replace(stage, start="b"), "b": replace(stage, start="a")}
    monkeypatch.setitem(experiments.EXPERIMENTS, "staged", replace(STAGED, pretrainings=loop))
    with pytest.raises(ConfigError, match="start: pretrainings start from each other: a, b"):
        experiments._waves(plan_pretraining("staged", tiny), [])


def test_dssa_pretraining_study_plans_the_full_model(real_root: Path) -> None:
    jobs = plan("pretraining-dssa", "cpu", real_root / "out", data_root=real_root)
    (pre,) = plan_pretraining("pretraining-dssa", real_root / "out")
    assert len(jobs) == 18 and pre.photos == "edges" and "loss.name=holef" in pre.overrides
    trained = [j for j in jobs if j.method == "train"]
    assert all("model.name=attention-fusion" in j.overrides and "loss.name=holef" in j.overrides for j in trained)
    assert {j.variant for j in trained if j.init == pre.weights} == {"Chair-V2: pretrained, edge maps",
                                                                      "Shoe-V1: pretrained, edge maps"}


def test_long_pretraining_study_gives_both_starts_the_same_budget(real_root: Path) -> None:
    jobs = plan("pretraining-long", "cpu", real_root / "out", data_root=real_root)
    (pre,) = plan_pretraining("pretraining-long", real_root / "out")
    assert len(jobs) == 18 and pre.photos == "edges" and "train.epochs=8" in pre.overrides
    for dataset in ("Chair-V2", "Shoe-V1"):
        scratch, pretrained = ({j.overrides for j in jobs if j.variant == f"{dataset}: {arm}"}
                               for arm in ("from scratch", "pretrained, edge maps"))
        assert scratch == pretrained and len(scratch) == 1 and "train.schedule=cosine" in scratch.pop()
    assert {j.variant for j in jobs if j.init == pre.weights} == {"Chair-V2: pretrained, edge maps",
                                                                  "Shoe-V1: pretrained, edge maps"}


def test_real_sketch_stage_never_trains_on_the_dataset_it_is_tested_on(real_root: Path) -> None:
    jobs = plan("pretraining-sketches", "cpu", real_root / "out", data_root=real_root)
    synthetic, *second = plan_pretraining("pretraining-sketches", real_root / "out", data_root=real_root)
    assert synthetic.init is None and not synthetic.datasets and "train.epochs=3" in synthetic.overrides
    for dataset, folder in (("Chair-V2", experiments.CHAIR_V2), ("Shoe-V1", experiments.SHOE_V1)):
        one, two = (next(j for j in jobs if j.variant == f"{dataset}: {arm}" and j.seed == 0)
                    for arm in ("synthetic", "synthetic, then real sketches"))
        stage = next(p for p in second if p.weights == two.init)
        assert one.init == synthetic.weights and stage.init == synthetic.weights and one.overrides == two.overrides
        assert str(real_root / folder) not in stage.datasets and len(stage.datasets) == 2
    assert [len(w) for w in experiments._waves([synthetic, *second], jobs)] == [7, 8, 6]  # with HOG; 2 stages, 6; 6
    (real_root / experiments.CHAIR_V1).rmdir()
    with pytest.raises(DataError, match="qmul-v1/chairs: dataset folder of pretraining 'then Shoe-V1 and Chair-V1'"):
        plan_pretraining("pretraining-sketches", real_root / "out", data_root=real_root)


def test_seed_study_retrains_the_real_sketch_studys_synthetic_chair_arm(real_root: Path) -> None:
    """`pretraining-seeds` is `pretraining-sketches`' Chair-V2 arms over twelve seeds: the same jobs for its seeds."""
    jobs = {(j.variant, j.seed): j for j in plan("pretraining-seeds", "cpu", real_root / "out", data_root=real_root)}
    (stage,) = plan_pretraining("pretraining-seeds", real_root / "out", data_root=real_root)
    sketches = {(j.variant, j.seed): j for j in plan("pretraining-sketches", "cpu", real_root / "out",
                                                     data_root=real_root)}
    (shared,) = (p for p in plan_pretraining("pretraining-sketches", real_root / "out", data_root=real_root)
                 if p.variant == stage.variant)
    assert len(jobs) == 24 and stage.overrides == shared.overrides and stage.photos == shared.photos == "edges"
    for variant in ("Chair-V2: synthetic", "Chair-V2: HOG + rankSVM"):
        for seed in (0, 2):
            mine, theirs = jobs[variant, seed], sketches[variant, seed]
            assert (mine.overrides, mine.photos, mine.method, mine.data_root) == \
                (theirs.overrides, theirs.photos, theirs.method, theirs.data_root)
    assert jobs["Chair-V2: synthetic", 11].init == stage.weights


def test_input_size_study_shares_its_112_px_arms_with_the_real_sketch_study(real_root: Path) -> None:
    jobs = {(j.variant, j.seed): j for j in plan("pretraining-225", "cpu", real_root / "out", data_root=real_root)}
    small, large = plan_pretraining("pretraining-225", real_root / "out")
    sketches = {(j.variant, j.seed): j for j in plan("pretraining-sketches", "cpu", real_root / "out",
                                                     data_root=real_root)}
    (shared,) = (p for p in plan_pretraining("pretraining-sketches", real_root / "out", data_root=real_root)
                 if p.variant == small.variant)
    assert small.overrides == shared.overrides and large.overrides == (*experiments._PAPER_SIZE, *small.overrides)
    for dataset in ("Chair-V2", "Shoe-V1"):
        one, two = jobs[f"{dataset}: 112 px", 1], jobs[f"{dataset}: 225 px", 1]
        assert one.overrides == sketches[f"{dataset}: synthetic", 1].overrides and one.init == small.weights
        assert two.overrides == (*experiments._PAPER_SIZE, *one.overrides) and two.init == large.weights
    cfg = experiments._config("real-cpu", large.overrides, 0, torch.device("cpu"))
    assert (cfg.model.input_size, cfg.train.data_size) == (225, 256)


def test_onthefly_variants_rank_partial_sketches_and_claims_read_m_at_a(tiny: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sbir_core.data.synthetic import ensure_synthetic

    steps = ("steps=4",)
    fly = Experiment("fly", "B1 against RL on partial sketches",
                     {"B1": Variant(method="onthefly-b1", rl=steps),
                      "RL": Variant(method="onthefly-rl", rl=(*steps, "epochs=2"))},
                     (Claim("RL improves m@A", "RL", "B1", "m@A"), Claim("RL improves acc@1", "RL", "B1")),
                     {"tiny": Profile(("train.epochs=1", "train.batch_size=4"), None, (0, 1))}, data="a category")
    monkeypatch.setitem(experiments.EXPERIMENTS, "fly", fly)
    with pytest.raises(ConfigError, match="rl: only on-the-fly variants take RL settings"):
        Variant(rl=steps)
    with pytest.raises(ConfigError, match="epochs: must be positive"):
        Variant(method="onthefly-rl", rl=("epochs=0",))
    with pytest.raises(ConfigError, match="metric: 'm@C' is not acc@K, m@A or m@B"):
        Claim("?", "RL", "B1", "m@C")
    with pytest.raises(ConfigError, match="metric: m@B needs an on-the-fly variant"):
        experiments.per_query(np.ones((2, 3)), "m@B", 4)
    record = run_experiment("fly", "tiny", tiny, data_root=ensure_synthetic("tiny", 0) / "chair", executor="debug")
    b1, policy = record["variants"]["B1"], record["variants"]["RL"]
    assert b1["steps"] == policy["steps"] == 4 and b1["gallery"] == 4 and len(policy["m@A"]) == 2
    assert all(0 <= a <= 1 for a in b1["m@A"] + policy["m@B"])
    assert record["configs"]["RL"]["onthefly"]["epochs"] == 2 and record["configs"]["RL"]["onthefly"]["seed"] == 0
    jobs = {(j.variant, j.seed): json.loads(Path(j.path).read_text()) for j in plan("fly", "tiny", tiny,
            data_root=ensure_synthetic("tiny", 0) / "chair")}
    assert jobs["RL", 1]["cached"], "RL starts from the same seed's network as B1: the run cache's"
    assert jobs["RL", 1]["rl_time_s"] > 0 == jobs["B1", 1]["rl_time_s"]
    networks = sum(jobs["B1", s]["train_time_s"] for s in (0, 1))
    assert record["provenance"]["train_time_s"] == pytest.approx(networks + jobs["RL", 0]["rl_time_s"]
                                                                 + jobs["RL", 1]["rl_time_s"]), "each network once"
    ranks = np.array([jobs["RL", s]["ranks"] for s in (0, 1)])
    assert ranks.shape[2] == 4 and record["variants"]["RL"]["acc@1"] == [float((r[:, -1] == 1).mean()) for r in ranks]
    m_at_a, acc = record["claims"]
    assert (m_at_a["metric"], acc["metric"]) == ("m@A", "acc@1") and m_at_a["low"] <= m_at_a["difference"]
    assert "| variant | m@A (%) | m@B (%) | acc@1 (%) | acc@10 (%) |" in experiments.markdown(record)


def test_training_time_counts_each_network_once() -> None:
    net = {"config": {"seed": 0}, "data": "chairs", "photos": "rgb", "train_sketches": 10, "train_time_s": 5.0}
    policy = {**net, "config": {"seed": 0, "onthefly": {"epochs": 10}}, "rl_time_s": 2.0}  # B1's network, then RL
    assert experiments._train_time([net, policy]) == 7.0
    assert experiments._train_time([net, {**net, "photos": "edges"}]) == 10.0, "another photo view, another network"
    assert experiments._train_time([net, {**net, "train_sketches": 5}]) == 10.0, "another training set"


def test_adaptive_variants_adapt_to_held_out_categories_from_one_supervised_start(
        tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sbir_core import meta
    from sbir_core.data import load_collection
    from sbir_core.data.synthetic import ensure_synthetic

    small = "level=category held_out=mug,teapot shots=2 queries=2 tasks_per_batch=2 pretrain_epochs=1"
    arms = experiments._adaptive(small, shots=2)
    adapt = Experiment("adapt", "three of chapter 06's arms", {v: arms[v] for v in ("no adaptation", "ours")},
                       (Claim("ours beats no adaptation", "ours", "no adaptation"),),
                       {"tiny": Profile(("meta_steps=2",), None, (0,))}, category=None)
    monkeypatch.setitem(experiments.EXPERIMENTS, "adapt", adapt)
    with pytest.raises(ConfigError, match="learner: only adapt variants take a learner"):
        Variant(learner="ours")
    with pytest.raises(ConfigError, match="learner: 'reptile' is not one of ours, anil, maml, sign-maml"):
        Variant(method="adapt", learner="reptile")
    with pytest.raises(ConfigError, match="margin: a learned margin is learned through the inner step's gradient"):
        Variant(("inner_steps=0",), method="adapt", learner="ours")
    with pytest.raises(ConfigError, match="method: adapt variants read the collection's own photos"):
        Variant(dataset="chair", method="adapt", learner="ours")
    root = ensure_synthetic("tiny", 0)
    record = run_experiment("adapt", "tiny", tiny, data_root=root, executor="debug")
    datasets = load_collection(root)
    held = sum(len(datasets[c].test) for c in ("mug", "teapot"))
    assert {v["queries"] for v in record["variants"].values()} == {held}
    assert record["configs"]["ours"]["meta"]["meta_steps"] == 2 and record["configs"]["ours"]["meta"]["seed"] == 0
    assert record["configs"]["no adaptation"]["meta"]["meta_steps"] == 0
    assert record["configs"]["ours"]["model"]["name"] == "attention"
    jobs = {j.variant: json.loads(Path(j.path).read_text()) for j in plan("adapt", "tiny", tiny, data_root=root)}
    assert jobs["ours"]["cached"] and not jobs["no adaptation"]["cached"], "one supervised start, from the run cache"
    assert jobs["ours"]["meta_time_s"] > 0 == jobs["no adaptation"]["meta_time_s"]
    assert record["provenance"]["train_time_s"] == pytest.approx(jobs["no adaptation"]["train_time_s"]
                                                                 + jobs["ours"]["meta_time_s"]), "the start once"
    # no adaptation is the supervised start as it is: its ranks, category by category in the settings' order
    cfg = meta.meta_preset("anil", held_out=["mug", "teapot"], shots=2, queries=2, tasks_per_batch=2, meta_steps=0,
                           pretrain_epochs=1, device="cpu", num_threads=1)
    start = meta.build_meta_run(datasets, cfg, progress=False)
    expected = []
    for c in ("mug", "teapot"):
        test = experiments._tensors(datasets[c], "test", start.run.train.data_size, "rgb")
        d = meta.test_distances(start.learner.net, test, start.run.model.input_size, start.learner.semantic.device)
        expected += experiments.true_match_ranks(d, test.positives).tolist()
    assert jobs["no adaptation"]["ranks"] == expected
    users = plan("adaptive-users", "cpu", tiny, data_root=root)
    assert len(users) == 35 and {j.method for j in users} == {"adapt"} and {j.shots for j in users} == {5}
    assert all("held_out=8,9" in j.overrides and j.data_root == str(root) for j in users)


def test_provenance_and_resolution_lines_read_the_record() -> None:
    record = {"seeds": [0, 1, 2], "variants": {"Base": {}, "Full": {}},
              "provenance": {"train_time_s": 7200.0, "device": "cpu", "machine": "x86_64", "commit": "0123456789abc",
                             "wall_time_s": 120.0, "jobs_run": 6, "cached_jobs": 2},
              "claims": [{"claim": "Full improves on Base", "verdict": "not resolved", "resolvable": 0.025,
                          "low": -0.02, "high": 0.03},
                         {"claim": "Full beats chance", "verdict": "reproduced", "resolvable": 0.015,
                          "low": 0.01, "high": 0.04}]}
    line = experiments.provenance(record)
    assert line.startswith("3 seeds x 2 variants: 2.0 h of training on cpu (x86_64), commit 0123456789;")
    assert "ran 6 of the 6 jobs in 2 min," in line and "resumes" not in line and "2 of the models" in line
    record["provenance"]["jobs_run"] = 1
    assert "ran 1 of the 6 jobs in 2 min (earlier runs" in experiments.provenance(record)
    first, second = experiments.resolution(record).split("\n")
    assert "± 2.5 points (short of the 2-point goal)" in first and "outside [-2.0, +3.0]" in first
    assert second.startswith("Full beats chance: reproduced, resolution ± 1.5 points (within the 2-point goal)")


def test_seeds_for_stops_at_the_floor_the_test_queries_set() -> None:
    """Seeds narrow only their own share of a claim's interval: where the test queries alone give more than the
    target, no number of seeds resolves it; records without the floor keep the seeds-only estimate."""
    claim = {"resolvable": 0.048, "query_floor": 0.045}
    assert experiments.seeds_for(claim, 12) == "none: the test queries alone give ± 4.5"
    assert experiments.seeds_for({"resolvable": 0.04, "query_floor": 0.01}, 3) == "15"  # 3 * (16 - 1) / (4 - 1)
    assert experiments.seeds_for({"resolvable": 0.04}, 3) == "12"
    assert experiments.seeds_for({"resolvable": 0.01, "query_floor": 0.005}, 10) == "10"  # never fewer than run


def test_figure_draws_the_records_interval_of_each_mean_where_it_has_one() -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claim = {"claim": "A beats B", "better": "A", "worse": "B", "metric": "acc@1", "difference": 0.1, "low": -0.01,
             "high": 0.2, "verdict": "not resolved"}
    variants = {"A": {"acc@1": [0.3, 0.4], "acc@1_interval": [0.2, 0.5]},
                "B": {"acc@1": [0.2, 0.3], "acc@1_interval": [0.1, 0.4]}}
    record = {"experiment": "x", "seeds": [0, 1], "variants": variants, "claims": [claim]}
    left = experiments.figure(record).axes[0]
    (bars,) = left.containers
    assert "seeds and test queries" in left.get_title()
    assert np.allclose(bars.lines[2][0].get_segments()[0][:, 0], [20, 50])  # A: its interval, in points
    plt.close("all")
    old = {**record, "variants": {v: {"acc@1": s["acc@1"]} for v, s in variants.items()}}
    assert "seeds and test queries" not in experiments.figure(old).axes[0].get_title()
    plt.close("all")
