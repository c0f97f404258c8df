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
