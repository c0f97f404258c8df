"""sbir experiment: named experiments as resumable jobs through submitit, and their records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbir_core import experiments
from sbir_core.cli import main
from sbir_core.config import ConfigError
from sbir_core.experiments import Claim, Experiment, Profile, plan, run_experiment, run_jobs

TINY = Experiment("tiny", "two variants, a few photos, one epoch",
                  {"Base": ("model.name=triplet-sn",), "Full": ("model.name=attention-fusion",)},
                  (Claim("Full improves on Base", "Full", "Base"),),
                  {"tiny": Profile(("train.epochs=1",), 16, (0, 1))})


@pytest.fixture()
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", TINY)
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path / "cache"))  # never the repository's run cache
    return tmp_path / "out"


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
    assert len(record["variants"]["Full"]["acc@1"]) == 2 and record["train_sketches"] > 0
    (claim,) = record["claims"]
    assert claim["verdict"] in ("reproduced", "contradicted", "not resolved")
    assert claim["low"] <= claim["difference"] <= claim["high"] and claim["resolvable"] > 0
    assert record["provenance"]["command"] == "sbir experiment run tiny" and record["provenance"]["commit"]
    assert json.loads((tiny / "record.json").read_text()) == record
    jobs = plan("tiny", "tiny", tiny)
    assert run_jobs(jobs, tiny, "debug") == [], "every job has its result: nothing runs again"
    Path(jobs[2].path).unlink()  # a job that did not finish
    assert run_jobs(jobs, tiny, "debug") == [jobs[2]]
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
    assert main(["experiment", "run", "nope"]) == 2
    assert "sbir: error: experiment: 'nope' is not one of" in capsys.readouterr().err
