"""Training and evaluation of triplet retrieval models (Yu et al., CVPR 2016; Song et al., ICCV 2017).

``fit(cfg, split, out_dir)`` trains any registered model with any loss of ``sbir_core.losses`` on a training split:

* the split is rendered once, at ``cfg.train.data_size``, and kept as uint8 tensors; each step takes random crops
  of ``cfg.model.input_size`` (and random flips), as the official code crops 225 from 256;
* one epoch shows every training sketch once as an anchor, with its true photo as the positive and a uniformly
  drawn OTHER photo as the negative, all from one seeded ``torch.Generator``;
* a validation split (``cfg.train.val_fraction`` of the training photos, with their sketches) selects the best
  epoch by acc@1; the test split is never seen during training;
* mixed precision on CUDA, full precision on the CPU; a checkpoint after every epoch, written atomically, from
  which an interrupted run resumes to exactly the weights of an uninterrupted one;
* ``log.jsonl`` in the run folder holds one row per epoch (loss, validation metrics, time) for the notebooks.

``evaluate(model, loss, data, cfg)`` ranks a split's gallery for each of its sketches (single- or 10-view) and
returns ``sbir_core.metrics.retrieval_metrics``.
"""
from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sbir_core.config import LossConfig, RunConfig
from sbir_core.losses import TripletLoss
from sbir_core.metrics import retrieval_metrics
from sbir_core.models import SBIRModel, build_model, photo_input, sketch_input
from sbir_core.runtime import atomic_path, get_device, seed_everything

CHECKPOINT, BEST, LOG, CONFIG = "last.pt", "best.pt", "log.jsonl", "config.json"


class SplitLike(Protocol):
    """The part of ``sbir_core.data.Split`` the trainer reads."""

    photo_names: list[str]
    positives: np.ndarray

    def sketch_rasters(self, size: int = 256) -> np.ndarray: ...
    def photos(self, size: int = 256) -> np.ndarray: ...
    def __len__(self) -> int: ...


# --- data as tensors ---------------------------------------------------------------------------------------------
@dataclass
class SplitTensors:
    """A split held in memory: uint8 sketches (n, S, S) with ink = 255, uint8 photos (m, S, S, 3), positives (n,)."""

    sketches: torch.Tensor
    photos: torch.Tensor
    positives: torch.Tensor
    photo_names: list[str]

    @classmethod
    def from_split(cls, split: SplitLike, size: int) -> "SplitTensors":
        sk = np.asarray(split.sketch_rasters(size), dtype=np.float32)
        ph = np.asarray(split.photos(size))
        pos = np.asarray(split.positives, dtype=np.int64)
        if sk.shape != (len(pos), size, size) or ph.shape != (len(split.photo_names), size, size, 3):
            raise ValueError(f"split arrays have unexpected shapes: sketches {sk.shape}, photos {ph.shape}, "
                             f"{len(pos)} positives, {len(split.photo_names)} photo names at size {size}")
        return cls(torch.from_numpy(np.round(sk * 255).astype(np.uint8)), torch.from_numpy(ph.astype(np.uint8)),
                   torch.from_numpy(pos), list(split.photo_names))

    def __len__(self) -> int:
        return int(self.sketches.shape[0])

    @property
    def n_photos(self) -> int:
        return int(self.photos.shape[0])

    def subset(self, photo_idx: np.ndarray) -> "SplitTensors":
        """The photos ``photo_idx`` (in that order) and every sketch of them."""
        photo_idx = np.asarray(photo_idx, dtype=np.int64)
        remap = np.full(self.n_photos, -1, dtype=np.int64)
        remap[photo_idx] = np.arange(len(photo_idx))
        new_pos = remap[self.positives.numpy()]
        keep = np.flatnonzero(new_pos >= 0)
        return SplitTensors(self.sketches[keep], self.photos[photo_idx], torch.from_numpy(new_pos[keep]),
                            [self.photo_names[i] for i in photo_idx])


def validation_photos(n_photos: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the ``fraction`` of photos (at least 2) held out for validation; empty for ``fraction <= 0``."""
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    n_val = max(2, int(round(fraction * n_photos)))
    if n_val >= n_photos - 1:
        raise ValueError(f"cannot hold out {n_val} of {n_photos} photos for validation")
    return np.sort(np.random.default_rng(seed).permutation(n_photos)[:n_val])


def carve_validation(data: SplitTensors, fraction: float, seed: int) -> tuple[SplitTensors, SplitTensors | None]:
    """Hold out ``fraction`` of the photos (at least 2), with all their sketches, as a validation split."""
    val_idx = validation_photos(data.n_photos, fraction, seed)
    if len(val_idx) == 0:
        return data, None
    return data.subset(np.setdiff1d(np.arange(data.n_photos), val_idx)), data.subset(val_idx)


def split_counts(cfg: RunConfig, train: SplitLike, test: SplitLike | None = None) -> dict[str, Any]:
    """Sketch and photo counts of the train / val / test splits a run uses, without rendering anything."""
    n_photos = len(train.photo_names)
    val_idx = validation_photos(n_photos, cfg.train.val_fraction, cfg.seed)
    n_val_sketches = int(np.isin(np.asarray(train.positives), val_idx).sum())
    counts: dict[str, Any] = {
        "train": {"sketches": len(train) - n_val_sketches, "photos": n_photos - len(val_idx)},
        "val": {"sketches": n_val_sketches, "photos": len(val_idx)} if len(val_idx) else None,
    }
    if test is not None:
        counts["test"] = {"sketches": len(test), "photos": len(test.photo_names)}
    return counts


def crop_views(images: torch.Tensor, size: int, top: torch.Tensor, left: torch.Tensor,
               flip: torch.Tensor) -> torch.Tensor:
    """Per-sample crops ``images[b, top:top+size, left:left+size]``, mirrored where ``flip``; (B, S, S[, 3]) input."""
    ar = torch.arange(size)
    rows = top[:, None] + ar
    cols = torch.where(flip[:, None], left[:, None] + size - 1 - ar, left[:, None] + ar)
    b = torch.arange(images.shape[0])[:, None, None]
    return images[b, rows[:, :, None], cols[:, None, :]]


def random_views(images: torch.Tensor, size: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crops of side ``size`` (and random horizontal flips) of a uint8 batch."""
    n, side = images.shape[0], images.shape[1]
    top = torch.randint(0, side - size + 1, (n,), generator=gen)
    left = torch.randint(0, side - size + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return crop_views(images, size, top, left, flips)


def eval_views(side: int, size: int, multiview: bool) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of the centre crop, or of the 10 views: 4 corners + centre, each also mirrored."""
    c, e = (side - size) // 2, side - size
    if not multiview:
        return [(c, c, False)]
    corners = [(0, 0), (0, e), (e, 0), (e, e), (c, c)]
    return [(t, l, f) for f in (False, True) for t, l in corners]


def sample_triplets(positives: torch.Tensor, n_photos: int, gen: torch.Generator) -> torch.Tensor:
    """One epoch of (anchor, positive, negative) indices, (n, 3): sketches in random order, negative ≠ positive."""
    order = torch.randperm(len(positives), generator=gen)
    pos = positives[order]
    neg = torch.randint(0, n_photos - 1, (len(order),), generator=gen)
    neg = neg + (neg >= pos).long()  # uniform over the other photos
    return torch.stack([order, pos, neg], dim=1)


def in_batch_pairs(photo_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchor rows i, negative rows j) for every pair of batch rows whose photos differ."""
    i, j = torch.nonzero(photo_ids[:, None] != photo_ids[None, :], as_tuple=True)
    return i, j


# --- the loss -------------------------------------------------------------------------------------------------------
def build_loss(cfg: LossConfig, embed_dim: int) -> nn.Module:
    """The ranking loss ``cfg.name`` for embeddings of size ``embed_dim`` (see ``sbir_core.losses``)."""
    if cfg.name == "triplet":
        return TripletLoss(cfg.margin, squared=cfg.squared)
    if cfg.name in ("holef", "mahalanobis"):
        from sbir_core.losses import HOLEFTripletLoss, MahalanobisTripletLoss

        cls = HOLEFTripletLoss if cfg.name == "holef" else MahalanobisTripletLoss
        return cls(embed_dim, margin=cfg.margin, **cfg.options)
    raise ValueError(f"unknown loss {cfg.name!r}; choose triplet, holef or mahalanobis")


# --- evaluation -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def embed(encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, to_input: Callable, size: int,
          view: tuple[int, int, bool], device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Embed a uint8 image stack through one crop ``view`` in batches; returns (n, D) float32 on ``device``."""
    top, left, flip = view
    out = []
    for i in range(0, images.shape[0], batch_size):
        chunk = images[i:i + batch_size]
        n = chunk.shape[0]
        x = crop_views(chunk, size, torch.full((n,), top), torch.full((n,), left), torch.full((n,), flip))
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out.append(encode(to_input(x.to(device))).float())
    return torch.cat(out)


@torch.no_grad()
def distance_matrix(model: SBIRModel, loss: nn.Module, data: SplitTensors, size: int, multiview: bool = False,
                    batch_size: int = 64, device: torch.device | None = None) -> torch.Tensor:
    """(n_sketches, n_photos) distances by ``loss.pairwise``, averaged over the test views."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros(len(data), data.n_photos, device=device)
        views = eval_views(data.sketches.shape[1], size, multiview)
        for view in views:
            s = embed(model.embed_sketch, data.sketches, sketch_input, size, view, device, batch_size)
            p = embed(model.embed_photo, data.photos, photo_input, size, view, device, batch_size)
            total += loss.pairwise(s, p).float()
    finally:
        model.train(was_training)
    return (total / len(views)).cpu()


def evaluate(model: SBIRModel, loss: nn.Module, data: SplitTensors, cfg: RunConfig,
             multiview: bool | None = None) -> dict[str, float]:
    """acc@1/5/10, mean rank, percentile of ``data``'s sketches against its gallery (see ``sbir_core.metrics``)."""
    mv = cfg.eval.multiview if multiview is None else multiview
    d = distance_matrix(model, loss, data, cfg.model.input_size, mv, cfg.eval.batch_size)
    return retrieval_metrics(d, data.positives)


# --- training -------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    model: SBIRModel  # holding the best validation weights (the last ones without validation)
    loss: nn.Module
    history: list[dict[str, Any]]
    best: dict[str, Any]  # {"epoch": int, "metrics": {...}}
    wall_time_s: float  # training time of this call (a resumed run counts only its own part)
    out_dir: Path | None


def _optimizer(cfg: RunConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    raise ValueError(f"unknown optimizer {t.optimizer!r}; choose adam or sgd")


def _scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch learning-rate schedule: ``constant`` (the papers) or ``cosine`` decay to zero over the run."""
    if cfg.train.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    if cfg.train.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    raise ValueError(f"unknown schedule {cfg.train.schedule!r}; choose constant or cosine")


def _selection_key(metrics: dict[str, float]) -> tuple[float, float]:
    return metrics["acc@1"], metrics["percentile"]


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_log(history: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in history))


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch rows of a run's ``log.jsonl``."""
    return [json.loads(line) for line in (Path(run_dir) / LOG).read_text().splitlines() if line.strip()]


def prepare_data(cfg: RunConfig, split: SplitLike | SplitTensors) -> tuple[SplitTensors, SplitTensors | None]:
    """Render a training split at ``cfg.train.data_size`` and carve the validation split from it."""
    if cfg.train.data_size < cfg.model.input_size:
        raise ValueError(f"train.data_size ({cfg.train.data_size}) must be >= model.input_size ({cfg.model.input_size})")
    data = split if isinstance(split, SplitTensors) else SplitTensors.from_split(split, cfg.train.data_size)
    return carve_validation(data, cfg.train.val_fraction, cfg.seed)


def fit(cfg: RunConfig, split: SplitLike | SplitTensors, out_dir: str | Path | None = None,
        device: str | torch.device = "auto", resume: bool = True, stop_after: int | None = None,
        progress: bool = True) -> TrainResult:
    """Train ``cfg.model.name`` with ``cfg.loss`` on ``split`` (a training split); see the module docstring.

    ``out_dir`` receives ``config.json``, ``last.pt`` (after every epoch), ``best.pt`` and ``log.jsonl``; with
    ``resume`` an existing ``last.pt`` there is continued. ``stop_after`` ends the call after that many epochs in
    total (an "interruption" for tests and notebooks), leaving a resumable checkpoint.
    """
    device = get_device(device) if not isinstance(device, torch.device) else device
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    out = Path(out_dir) if out_dir is not None else None
    if cfg.train.negatives not in ("random", "in-batch"):
        raise ValueError(f"train.negatives must be 'random' or 'in-batch', got {cfg.train.negatives!r}")
    train, val = prepare_data(cfg, split)
    if train.n_photos < 2:
        raise ValueError("training needs at least 2 photos")

    seed_everything(cfg.seed)
    model = build_model(cfg.model).to(device)
    loss_fn = build_loss(cfg.loss, model.embed_dim).to(device)
    params = list(model.parameters()) + list(loss_fn.parameters())
    optimizer = _optimizer(cfg, params)
    scheduler = _scheduler(cfg, optimizer)
    use_amp = cfg.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "metrics": None}
    start_epoch = 0

    if out is not None:
        _check_or_write_config(cfg, out)
        if resume and (out / CHECKPOINT).exists():
            state = torch.load(out / CHECKPOINT, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            loss_fn.load_state_dict(state["loss"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            history, best, start_epoch = state["history"], state["best"], state["epoch"]

    epochs = cfg.train.epochs if stop_after is None else min(cfg.train.epochs, stop_after)
    steps_per_epoch = max(1, math.ceil(len(train) / cfg.train.batch_size))
    # no ``disable=False``: an explicit value would override the TQDM_DISABLE environment variable
    bar = tqdm(total=(epochs - start_epoch) * steps_per_epoch, desc="train", leave=False,
               **({} if progress else {"disable": True}))
    best_state = None
    t0 = time.perf_counter()
    for epoch in range(start_epoch + 1, epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        losses = []
        for batch in _batches(sample_triplets(train.positives, train.n_photos, gen), cfg.train.batch_size):
            in_batch = cfg.train.negatives == "in-batch"
            photo_idx = batch[:, 1] if in_batch else torch.cat([batch[:, 1], batch[:, 2]])
            a = sketch_input(random_views(train.sketches[batch[:, 0]], cfg.model.input_size, cfg.train.flip, gen))
            p = photo_input(random_views(train.photos[photo_idx], cfg.model.input_size, cfg.train.flip, gen))
            with torch.autocast(device.type, enabled=use_amp):
                ea, ep = model.embed(a.to(device), p.to(device))
            ea, ep = ea.float(), ep.float()
            if in_batch:  # every other photo of the batch is a negative of each anchor
                i, j = in_batch_pairs(batch[:, 1])
                if len(i) == 0:  # all anchors show one photo: no negatives, nothing to learn from
                    continue
                loss = loss_fn(ea[i], ep[i], ep[j])
            else:
                loss = loss_fn(ea, *ep.chunk(2))
            loss = loss + loss_fn.regularizer().to(device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}")
        row: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                               "lr": optimizer.param_groups[0]["lr"],
                               "epoch_time_s": round(time.perf_counter() - t_epoch, 3)}
        scheduler.step()
        if val is not None and (epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs):
            metrics = evaluate(model, loss_fn, val, cfg)
            row.update({f"val_{k}": v for k, v in metrics.items()})
            if best["metrics"] is None or _selection_key(metrics) > _selection_key(best["metrics"]):
                best = {"epoch": epoch, "metrics": metrics}
                best_state = _weights(model, loss_fn)
                if out is not None:
                    _save({"epoch": epoch, **best_state, "metrics": metrics}, out / BEST)
            bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4f}", val_acc1=f"{metrics['acc@1']:.3f}")
        history.append(row)
        if out is not None:
            if val is None:  # without validation the latest weights are the selected ones
                best = {"epoch": epoch, "metrics": None}
                _save({"epoch": epoch, **_weights(model, loss_fn), "metrics": None}, out / BEST)
            _save({"epoch": epoch, "model": model.state_dict(), "loss": loss_fn.state_dict(),
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "generator": gen.get_state(),
                   "torch_rng": torch.get_rng_state(), "history": history, "best": best}, out / CHECKPOINT)
            _write_log(history, out / LOG)
    bar.close()
    wall = time.perf_counter() - t0

    if val is not None and best["epoch"] is not None:  # hand back the selected weights
        if best_state is None and out is not None:
            best_state = torch.load(out / BEST, map_location=device, weights_only=True)
        if best_state is not None:
            model.load_state_dict(best_state["model"])
            loss_fn.load_state_dict(best_state["loss"])
    model.eval()
    return TrainResult(model, loss_fn, history, best, wall, out)


def _weights(model: nn.Module, loss_fn: nn.Module) -> dict[str, Any]:
    """A detached copy of the model's and the loss's weights."""
    copy = lambda sd: {k: v.detach().clone() for k, v in sd.items()}  # noqa: E731
    return {"model": copy(model.state_dict()), "loss": copy(loss_fn.state_dict())}


def _batches(triplets: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive batches; a last batch of a single triplet is dropped (batch norm needs two samples)."""
    for i in range(0, len(triplets), batch_size):
        batch = triplets[i:i + batch_size]
        if len(batch) > 1 or len(triplets) == 1:
            yield batch


def _check_or_write_config(cfg: RunConfig, out: Path) -> None:
    path = out / CONFIG
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != json.loads(cfg.to_json()):
            raise ValueError(f"{path}: the run folder holds a run with a different configuration; use a new folder")
        return
    with atomic_path(path) as tmp:
        tmp.write_text(cfg.to_json() + "\n")


# --- loading a trained run ------------------------------------------------------------------------------------------
def load_run(run_dir: str | Path, device: str | torch.device = "auto",
             checkpoint: str = BEST) -> tuple[RunConfig, SBIRModel, nn.Module]:
    """The configuration, model and loss of a run folder, with the weights of ``checkpoint`` (``best.pt``)."""
    run_dir = Path(run_dir)
    device = get_device(device) if not isinstance(device, torch.device) else device
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir / CONFIG}: not a training run folder (no config.json)")
    cfg = RunConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    model = build_model(cfg.model).to(device)
    loss_fn = build_loss(cfg.loss, model.embed_dim).to(device)
    if not (run_dir / checkpoint).exists():
        raise FileNotFoundError(f"{run_dir / checkpoint}: no checkpoint yet (the run has not finished an epoch)")
    state = torch.load(run_dir / checkpoint, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    loss_fn.load_state_dict(state["loss"])
    model.eval()
    return cfg, model, loss_fn


def git_commit(path: str | Path = Path(__file__).parent) -> str | None:
    """The commit of the checkout holding ``path`` (``+dirty`` when ``sbir_core`` has uncommitted changes), or None."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=path, capture_output=True, text=True, check=True).stdout  # noqa
        commit = run("rev-parse", "HEAD").strip()
        dirty = run("status", "--porcelain", "--", str(Path(__file__).parent)).strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def device_description(device: torch.device) -> str:
    """``"cuda: <name>"`` or ``"cpu: <n> threads"``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {torch.get_num_threads()} threads"


__all__ = ["SplitTensors", "TrainResult", "build_loss", "carve_validation", "device_description",
           "distance_matrix", "eval_views", "evaluate", "fit", "git_commit", "load_run", "prepare_data",
           "in_batch_pairs", "random_views", "read_log", "sample_triplets", "split_counts", "validation_photos"]
