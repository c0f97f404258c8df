"""The chapter records (check / write / off) and the run cache (hit, key, damage)."""
from __future__ import annotations

import json

import pytest
import torch

from sbir_core import cache
from sbir_core.compare import Verdict
from sbir_core.config import override
from sbir_core.record import Record, RecordMismatch
from sbir_core.runtime import atomic_path
from sbir_core.train import SplitTensors, cpu_weights, fit, read_log
from test_train import FakeSplit, tiny_config


def write_record(path, **figures):
    rec = Record(path, {"SEED": 0}, mode="write")
    for name, (value, tol) in figures.items():
        rec.figure(name, value, tol, "test")
    rec.close()


def test_record_round_trip_and_tolerance(tmp_path):
    path = tmp_path / "ch.record.json"
    write_record(path, acc=(0.30, 0.05))
    body = json.loads(path.read_text())
    assert body["figures"]["acc"] == {"value": 0.30, "tol": 0.05, "why": "test"} and body["made_by"]
    ok = Record(path, {"SEED": 0}, mode="check")
    assert ok.figure("acc", 0.34, 0.05, "test") == 0.34
    ok.close()
    with pytest.raises(RecordMismatch, match=r"acc = 0\.2000, recorded 0\.3000 ± 0\.05"):
        Record(path, {"SEED": 0}, mode="check").figure("acc", 0.20, 0.05, "test")


def test_record_refuses_other_parameters_unknown_and_missing_figures(tmp_path):
    path = tmp_path / "ch.record.json"
    write_record(path, acc=(0.30, 0.05), rank=(5.0, 1.0))
    with pytest.raises(RecordMismatch, match="parameters"):
        Record(path, {"SEED": 1}, mode="check")
    rec = Record(path, {"SEED": 0}, mode="check")
    with pytest.raises(RecordMismatch, match="not in the record"):
        rec.figure("new", 1.0, 0.1, "test")
    rec.figure("acc", 0.3, 0.05, "test")
    with pytest.raises(RecordMismatch, match="not produced by this run: \\['rank'\\]"):
        rec.close()
    with pytest.raises(RecordMismatch, match="no record"):
        Record(tmp_path / "missing.json", {}, mode="check")
    with pytest.raises(RecordMismatch, match="is nan"):
        Record(path, {"SEED": 0}, mode="check").figure("acc", float("nan"), 0.05, "test")


def test_off_mode_reads_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SBIR_RECORD", raising=False)
    rec = Record(tmp_path / "none.json", {"SEED": 0})
    assert rec.mode == "off" and rec.figure("acc", 0.1, 0.01, "t") == 0.1
    rec.close()
    assert not (tmp_path / "none.json").exists()
    monkeypatch.setenv("SBIR_RECORD", "sometimes")
    with pytest.raises(ValueError, match="SBIR_RECORD"):
        Record(tmp_path / "none.json", {})


def test_verdict_labels_are_checked_only_where_stable(tmp_path):
    path = tmp_path / "v.record.json"
    rec = Record(path, {}, mode="write")
    rec.verdict("clear", Verdict(0.10, 0.06, 0.14, "reproduced"), tol=0.03)
    rec.verdict("edge", Verdict(0.03, 0.01, 0.05, "reproduced"), tol=0.03)
    rec.close()
    saved = json.loads(path.read_text())["figures"]
    assert saved["clear: label"]["stable"] and not saved["edge: label"]["stable"]
    check = Record(path, {}, mode="check")
    with pytest.raises(RecordMismatch, match="'not resolved'.*recorded 'reproduced'"):
        check.verdict("clear", Verdict(0.09, -0.01, 0.15, "not resolved"), tol=0.03)
    check = Record(path, {}, mode="check")
    check.verdict("clear", Verdict(0.11, 0.05, 0.16, "reproduced"), tol=0.03)
    check.verdict("edge", Verdict(0.02, -0.01, 0.05, "not resolved"), tol=0.03)  # borderline: label free
    check.close()


@pytest.fixture()
def data():
    return SplitTensors.from_split(FakeSplit(), 28)


def test_run_cache_trains_once_then_loads(tmp_path, monkeypatch, data):
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path))
    cfg = tiny_config(**{"train.epochs": "2"})
    first = cache.cached_fit(cfg, data, progress=False)
    second = cache.cached_fit(cfg, data, progress=False)
    assert not first.cached and second.cached and second.history == first.history
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    other = cache.cached_fit(tiny_config(**{"train.epochs": "2", "seed": "1"}), data, progress=False)
    assert not other.cached and len(list(tmp_path.iterdir())) == 2


def test_cache_key_covers_config_data_and_code(data, monkeypatch):
    cfg, cpu = tiny_config(), torch.device("cpu")
    key = cache.cache_key(cfg, data, cpu)[0]
    assert cache.cache_key(tiny_config(**{"train.lr": "1e-3"}), data, cpu)[0] != key
    changed = SplitTensors(data.sketches.clone(), data.photos, data.positives, data.photo_names)
    changed.sketches[0, 0, 0] ^= 1
    assert cache.cache_key(cfg, changed, cpu)[0] != key
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert cache.cache_key(cfg, data, cpu)[0] != key  # another thread count takes another float path
    monkeypatch.undo()
    other = "DEFAULT" if torch.backends.cpu.get_cpu_capability() != "DEFAULT" else "AVX2"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
    assert cache.cache_key(cfg, data, cpu)[0] != key
    monkeypatch.undo()
    monkeypatch.setattr(cache, "code_version", lambda: "other code")
    assert cache.cache_key(cfg, data, cpu)[0] != key


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_damaged_entries_are_reported_and_retrained(tmp_path, monkeypatch, capsys, data, damage):
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path))
    cfg = tiny_config(**{"train.epochs": "1"})
    cache.cached_fit(cfg, data, progress=False)
    entry = next(tmp_path.iterdir())
    weights = entry / "weights.pt"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(weights.read_bytes()); raw[-20] ^= 0xFF; weights.write_bytes(bytes(raw))
    elif damage == "delete":
        weights.unlink()
    else:
        (entry / "checksums.json").write_text("{")
    result = cache.cached_fit(cfg, data, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert not result.cached and len(err) == 1 and "damaged" in err[0] and str(entry) in err[0]
    assert cache.cached_fit(cfg, data, progress=False).cached  # the retrained entry is whole again


def test_cache_never_replaces_a_folder_it_did_not_write(tmp_path, monkeypatch, data):
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path))
    cfg = tiny_config(**{"train.epochs": "1"})
    key = cache.cache_key(cfg, data, torch.device("cpu"))[0]
    (tmp_path / key).mkdir()
    (tmp_path / key / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not a run-cache entry"):
        cache.cached_fit(cfg, data, device="cpu", progress=False)
    assert (tmp_path / key / "notes.txt").read_text() == "mine"


def test_cache_off(monkeypatch, data):
    monkeypatch.setenv("SBIR_CACHE", "off")
    assert cache.cache_dir() is None
    assert not cache.cached_fit(tiny_config(**{"train.epochs": "1"}), data, progress=False).cached


def test_cached_fit_many_trains_side_by_side_as_one_thread_runs(tmp_path, monkeypatch, data):
    """Two worker processes, each run on one thread: the same weights as those runs trained here, in order, with
    the cache on (the second call loads them) and off (the second call trains them again, in this process)."""
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path))
    cfgs = [tiny_config(**{"train.epochs": "2", "seed": str(s)}) for s in (0, 1)]
    many = cache.cached_fit_many([*cfgs, cfgs[0]], data, device="cpu", workers=2, progress=False)
    assert [r.cached for r in many] == [False, False, False]  # trained by the workers in this call
    assert all(r.model is not many[0].model for r in many[1:])
    assert len(list(tmp_path.iterdir())) == 2
    again = cache.cached_fit_many(cfgs, data, device="cpu", workers=1, progress=False)  # in this process: no spawn
    assert [r.cached for r in again] == [True, True]
    monkeypatch.setenv("SBIR_CACHE", "off")
    alone = cache.cached_fit_many(cfgs, data, device="cpu", workers=1, progress=False)
    assert [r.cached for r in alone] == [False, False]
    for a_run, b_run in zip(alone, many):
        for a, b in zip(a_run.model.state_dict().values(), b_run.model.state_dict().values()):
            assert torch.equal(a, b)
        assert [r["train_loss"] for r in a_run.history] == [r["train_loss"] for r in b_run.history]


def test_a_stopped_cached_run_resumes_from_its_last_epoch_to_the_same_model(tmp_path, monkeypatch, data):
    cfg = tiny_config(**{"train.epochs": "3"})
    monkeypatch.setenv("SBIR_CACHE", "off")
    whole = cache.cached_fit(cfg, data, device="cpu", progress=False)
    monkeypatch.setenv("SBIR_CACHE", str(tmp_path / "cache"))
    partial = tmp_path / "cache" / f".{cache.cache_key(cfg, data, torch.device('cpu'))[0]}.partial"
    fit(cfg, data, partial, device="cpu", stop_after=2, progress=False)  # a run stopped after two of three epochs
    resumed = cache.cached_fit(cfg, data, device="cpu", progress=False)
    assert not partial.exists() and [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.wall_time_s >= sum(r["epoch_time_s"] for r in resumed.history[:2])
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # stopped when starting from weights under one path, continued from the same weights under another
    start, moved = tmp_path / "start.pt", tmp_path / "moved.pt"
    for path in (start, moved):
        torch.save(cpu_weights(whole.model, whole.loss), path)
    one, two = (tiny_config(**{"train.epochs": "3", "model.init": str(p)}) for p in (start, moved))
    partial = tmp_path / "cache" / f".{cache.cache_key(one, data, torch.device('cpu'))[0]}.partial"
    fit(one, data, partial, device="cpu", stop_after=1, progress=False)
    first = read_log(partial)[0]
    again = cache.cached_fit(two, data, device="cpu", progress=False)
    assert not partial.exists() and len(again.history) == 3 and again.history[0] == first  # resumed, not retrained


def test_cache_key_covers_the_weights_a_run_starts_from(tmp_path, data):
    cpu, start = torch.device("cpu"), tmp_path / "start.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, start)
    key = cache.cache_key(tiny_config(**{"model.init": str(start)}), data, cpu)[0]
    assert key != cache.cache_key(tiny_config(), data, cpu)[0]
    torch.save({"model": {"w": torch.ones(2)}}, start)  # same path, other weights: another model
    assert cache.cache_key(tiny_config(**{"model.init": str(start)}), data, cpu)[0] != key
    # the same tensors written again through a temporary file of another name (another zip prefix): the same model
    with atomic_path(tmp_path / "again.pt") as tmp:
        torch.save({"model": {"w": torch.ones(2)}}, tmp)
    assert (tmp_path / "again.pt").read_bytes() != start.read_bytes()
    again = cache.cache_key(tiny_config(**{"model.init": str(tmp_path / "again.pt")}), data, cpu)[0]
    assert again == cache.cache_key(tiny_config(**{"model.init": str(start)}), data, cpu)[0]
