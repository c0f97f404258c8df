"""``sbir synth`` and ``sbir data info`` through ``sbir_core.cli.main``."""
import json

from sbir_core.cli import main


def test_synth_then_info(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", str(out), "--profile", "tiny", "--seed", "1", "--categories", "shoe"]) == 0
    assert (out / "shoe" / "shoe_Coordinate").is_file() and (out / "collection.json").is_file()
    capsys.readouterr()

    assert main(["data", "info", str(out / "shoe"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "qmul-v2" and info["name"] == "shoe"
    assert (info["train_photos"], info["test_photos"]) == (8, 4)
    assert info["train_sketches"] >= 24 and info["test_sketches"] >= 12
    assert info["strokes"]["longer_side_mean"] > 189.99

    assert main(["data", "info", str(out / "shoe")]) == 0
    text = capsys.readouterr().out
    assert "shoe (qmul-v2)" in text and "strokes/sketch" in text

    assert main(["data", "info", str(out)]) == 2  # a collection, not one dataset
    err = capsys.readouterr().err
    assert "collection of 1 dataset folders (shoe)" in err and len(err.strip().splitlines()) == 1

    assert main(["synth", str(out), "--profile", "tiny", "--categories", "shoe"]) == 2  # exists
    assert "not empty" in capsys.readouterr().err


def test_malformed_data_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "ChairV2"
    (root / "photo").mkdir(parents=True)
    (root / "ChairV2_Coordinate").write_bytes(b"not a pickle")
    assert main(["data", "info", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ChairV2_Coordinate" in err and "Traceback" not in err
    assert main(["data", "info", str(tmp_path / "nowhere"), "--json"]) == 2
