"""``sbir train`` and ``sbir eval`` end to end on a tiny QMUL-V2-layout folder the test writes itself."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sbir_core.cli import main


def write_tiny_v2(root: Path, n_train: int = 8, n_test: int = 4, seed: int = 0) -> Path:
    """Photos: a dark rectangle at a random place; sketches: that rectangle's outline as one closed stroke."""
    rng = np.random.default_rng(seed)
    (root / "photo").mkdir(parents=True)
    coords: dict[str, np.ndarray] = {}
    for split, n, per in (("train", n_train, 2), ("test", n_test, 1)):
        for i in range(n):
            name = f"{split}-shoe_{i:02d}"
            x0, y0 = rng.integers(20, 110, 2)
            x1, y1 = x0 + rng.integers(60, 140), y0 + rng.integers(60, 140)
            img = np.full((256, 256, 3), 255, np.uint8)
            img[y0:y1, x0:x1] = (40, 60, 90)
            Image.fromarray(img).save(root / "photo" / f"{name}.png")
            for k in range(per):
                j = rng.normal(0, 2, (5, 2))
                xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], float) + j
                coords[f"/{split}/{name}_{k + 1}"] = np.column_stack([xy, [0, 0, 0, 0, 1]]).astype(np.float64)
    with open(root / "Tiny_Coordinate", "wb") as f:
        pickle.dump(coords, f, protocol=3)
    return root


TINY = ["--set", "train.epochs=2", "--set", "model.input_size=24", "--set", "train.data_size=28",
        "--set", "train.batch_size=4", "--set", "model.hidden_dim=16", "--set", "model.embed_dim=8",
        "--set", "train.val_fraction=0.25"]


def test_train_then_eval_json(tmp_path, capsys):
    data = write_tiny_v2(tmp_path / "tiny")
    run = tmp_path / "run"
    assert main(["train", "--model", "triplet-sn", "--data", str(data), "--out", str(run), "--seed", "1", *TINY]) == 0
    assert "trained triplet-sn" in capsys.readouterr().out
    assert {"config.json", "last.pt", "best.pt", "log.jsonl", "train_summary.json"} <= {p.name for p in run.iterdir()}
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["dataset"]["counts"] == {"train": {"sketches": 12, "photos": 6}, "val": {"sketches": 4, "photos": 2}}

    assert main(["eval", str(run), "--data", str(data), "--json", "--save", str(tmp_path / "r.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"acc@1", "acc@5", "acc@10", "mean_rank"} <= set(out)
    assert out["n_queries"] == 4 and out["gallery_size"] == 4 and out["split"] == "test"
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["config"]["seed"] == 1 and record["dataset"]["counts"]["test"] == {"sketches": 4, "photos": 4}
    assert record["metrics"]["acc@1"] == out["acc@1"] and record["training"]["epochs"] == 2
    assert record["command"].startswith(f"sbir eval {run} --data {data}")
    assert record["training"]["command"].startswith(f"sbir train --model triplet-sn --data {data}")

    assert main(["eval", str(run), "--data", str(data), "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert "acc@1" in text and "acc@10" in text and "mean rank" in text and "val (4 sketches, gallery 2" in text


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sbir: error:") and err.count("\n") == 1
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "train.nope=1"]) == 2
    assert "unknown configuration field" in capsys.readouterr().err
    assert main(["train", "--model", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "model.name: 'nope' is not one of" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "norun"), "--data", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--json"])
def test_eval_json_is_one_object(tmp_path, capsys, flag):
    data = write_tiny_v2(tmp_path / "tiny", seed=2)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *TINY, "--set", "train.val_fraction=0"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(data), flag, "--no-multiview"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["multiview"] is False


@pytest.mark.parametrize("sets, key", [(["train.data_size=16"], "train.data_size"),
                                       (["train.optimizer=rmsprop"], "train.optimizer"),
                                       (["train.epochs=three"], "train.epochs"),
                                       (["loss.options={\"l3\": 1}", "loss.name=holef"], "loss.options")])
def test_configuration_mistakes_exit_2_naming_the_key(tmp_path, capsys, sets, key):
    data = write_tiny_v2(tmp_path / "tiny")
    args = [a for s in sets for a in ("--set", s)]
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sbir: error: {key}: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_run_folder_of_another_configuration_is_refused(tmp_path, capsys):
    data = write_tiny_v2(tmp_path / "tiny")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *TINY]) == 0
    config = (run / "config.json").read_text()
    assert main(["train", "--data", str(data), "--out", str(run), *TINY, "--set", "train.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "other settings (train.lr)" in err and err.count("\n") == 1
    assert (run / "config.json").read_text() == config


def test_an_unavailable_device_exits_2(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    data = write_tiny_v2(tmp_path / "tiny")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--device", "cuda"]) == 2
    assert capsys.readouterr().err.startswith("sbir: error: --device: ")
