"""Training and evaluation of triplet retrieval models (Yu et al., CVPR 2016; Song et al., ICCV 2017).

``fit(cfg, split, out_dir)`` trains any registered model with any loss of ``sbir_core.losses`` on a training split:

* the split is rendered once, at ``cfg.train.data_size``, and kept as uint8 tensors; each step takes random crops
  of ``cfg.model.input_size`` (and random flips), as the official code crops 225 from 256;
* one epoch shows every training sketch once as an anchor, with its true photo as the positive and, by
  ``cfg.train.negatives``, a uniformly drawn OTHER photo (``random``, the Bhunia-group code), every other photo of the
  batch (``in-batch``), or a human-annotated (more similar, less similar) photo pair (``annotated``, QMUL-V1, as the
  official Sketch Me That Shoe code), all from one seeded ``torch.Generator``;
* a validation split (``cfg.train.val_fraction`` of the training photos, with their sketches) selects the best
  epoch by acc@1; the test split is never seen during training;
* mixed precision on CUDA, full precision on the CPU; a checkpoint after every epoch, written atomically, from
  which an interrupted run resumes to exactly the weights of an uninterrupted one;
* ``log.jsonl`` in the run folder holds one row per epoch (loss, validation metrics, time) for the notebooks.

``evaluate(model, loss, data, cfg)`` ranks a split's gallery for each of its sketches (single- or 10-view) and
returns ``sbir_core.metrics.retrieval_metrics``.
"""
from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sbir_core.data.views import crop_views, eval_views, random_views
from sbir_core.config import ConfigError, RunConfig, validate_config
from sbir_core.losses import build_loss
from sbir_core.metrics import retrieval_metrics, true_match_ranks
from sbir_core.models import SBIRModel, build_model, photo_input, sketch_input
from sbir_core.runtime import atomic_path, get_device, progress_disabled, seed_everything

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
    triplets: torch.Tensor | None = None  # (t, 3) annotated (sketch, more similar, less similar photo) rows (QMUL-V1)

    @classmethod
    def from_split(cls, split: SplitLike, size: int) -> "SplitTensors":
        sk = np.asarray(split.sketch_rasters(size), dtype=np.float32)
        ph = np.asarray(split.photos(size))
        pos = np.asarray(split.positives, dtype=np.int64)
        if sk.shape != (len(pos), size, size) or ph.shape != (len(split.photo_names), size, size, 3):
            raise ValueError(f"split arrays have unexpected shapes: sketches {sk.shape}, photos {ph.shape}, "
                             f"{len(pos)} positives, {len(split.photo_names)} photo names at size {size}")
        triplets = getattr(split, "triplets", None)
        if triplets is not None:
            triplets = torch.from_numpy(np.concatenate(
                [np.column_stack([np.full(len(t), i), t]) for i, t in enumerate(triplets) if len(t)]
                or [np.zeros((0, 3))]).astype(np.int64))
        return cls(torch.from_numpy(np.round(sk * 255).astype(np.uint8)), torch.from_numpy(ph.astype(np.uint8)),
                   torch.from_numpy(pos), list(split.photo_names), triplets)

    @classmethod
    def concat(cls, parts: Sequence["SplitTensors"]) -> "SplitTensors":
        """Several splits as one, each photo keeping its own sketches (e.g. every category of a collection)."""
        if any(p.triplets is not None for p in parts):
            raise ValueError("SplitTensors.concat does not merge annotated triplets")
        offsets = np.cumsum([0] + [p.n_photos for p in parts[:-1]])
        return cls(torch.cat([p.sketches for p in parts]), torch.cat([p.photos for p in parts]),
                   torch.cat([p.positives + int(o) for p, o in zip(parts, offsets)]),
                   [name for p in parts for name in p.photo_names])

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
        triplets = None
        if self.triplets is not None:  # keep the annotated rows whose sketch and both photos are kept
            sketch_map = np.full(len(self), -1, dtype=np.int64)
            sketch_map[keep] = np.arange(len(keep))
            t = self.triplets.numpy()
            t = np.column_stack([sketch_map[t[:, 0]], remap[t[:, 1]], remap[t[:, 2]]])
            triplets = torch.from_numpy(t[(t >= 0).all(axis=1)])
        return SplitTensors(self.sketches[keep], self.photos[photo_idx], torch.from_numpy(new_pos[keep]),
                            [self.photo_names[i] for i in photo_idx], triplets)


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


def sample_triplets(positives: torch.Tensor, n_photos: int, gen: torch.Generator) -> torch.Tensor:
    """One epoch of (anchor, positive, negative) indices, (n, 3): sketches in random order, and for each a uniformly
    drawn OTHER photo as the negative (``train.negatives = "random"``, as the Bhunia-group code samples)."""
    order = torch.randperm(len(positives), generator=gen)
    pos = positives[order]
    neg = torch.randint(0, n_photos - 1, (len(order),), generator=gen)
    neg = neg + (neg >= pos).long()  # uniform over the other photos
    return torch.stack([order, pos, neg], dim=1)


def sample_annotated(triplets: torch.Tensor, n_sketches: int, n_photos: int, hard_ratio: float,
                     gen: torch.Generator) -> torch.Tensor:
    """One epoch of human-annotated triplets, as the official Sketch Me That Shoe code samples them (QMUL-V1).

    ``triplets`` holds (sketch, more similar photo, less similar photo) rows from the annotation. Each sketch that has
    annotations is an anchor once, in random order, with one of its annotated pairs drawn uniformly; with probability
    ``1 - hard_ratio`` the annotated negative is replaced by a uniformly drawn photo other than the pair's positive
    (an "easy" negative). Note that the annotated "positive" is a judgement of similarity, not the true photo.
    """
    anchors = torch.unique(triplets[:, 0])
    order = anchors[torch.randperm(len(anchors), generator=gen)]
    rows = []
    for a in order.tolist():
        mine = triplets[triplets[:, 0] == a]
        rows.append(mine[torch.randint(0, len(mine), (1,), generator=gen)])
    out = torch.cat(rows).clone()
    easy = torch.rand(len(out), generator=gen) >= hard_ratio
    neg = torch.randint(0, n_photos - 1, (len(out),), generator=gen)
    neg = neg + (neg >= out[:, 1]).long()
    out[easy, 2] = neg[easy]
    return out


def in_batch_pairs(photo_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchor rows i, negative rows j) for every pair of batch rows whose photos differ."""
    i, j = torch.nonzero(photo_ids[:, None] != photo_ids[None, :], as_tuple=True)
    return i, j


# --- evaluation -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def embed(encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, to_input: Callable, size: int,
          view: tuple[int, int, bool], device: torch.device, batch_size: int = 64, amp: bool = False) -> torch.Tensor:
    """Embed a uint8 image stack through one crop ``view`` in batches; returns (n, D) float32 on ``device``.

    ``amp`` runs the network in mixed precision, on CUDA only."""
    top, left, flip = view
    out = []
    for i in range(0, images.shape[0], batch_size):
        chunk = images[i:i + batch_size]
        n = chunk.shape[0]
        x = crop_views(chunk, size, torch.full((n,), top), torch.full((n,), left), torch.full((n,), flip))
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            out.append(encode(to_input(x.to(device)).contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out)


@torch.no_grad()
def distance_matrix(model: SBIRModel, loss: nn.Module, data: SplitTensors, size: int, multiview: bool = False,
                    batch_size: int = 64, device: torch.device | None = None, amp: bool = False) -> torch.Tensor:
    """(n_sketches, n_photos) distances by ``loss.pairwise``, averaged over the test views."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros(len(data), data.n_photos, device=device)
        views = eval_views(data.sketches.shape[1], size, multiview)
        for view in views:
            s = embed(model.embed_sketch, data.sketches, sketch_input, size, view, device, batch_size, amp)
            p = embed(model.embed_photo, data.photos, photo_input, size, view, device, batch_size, amp)
            total += loss.pairwise(s, p).float()
    finally:
        model.train(was_training)
    return (total / len(views)).cpu()


def _run_distances(model: SBIRModel, loss: nn.Module, data: SplitTensors, cfg: RunConfig,
                   multiview: bool | None) -> torch.Tensor:
    """``distance_matrix`` with the run's input size, test views (``cfg.eval.multiview`` unless given) and AMP."""
    mv = cfg.eval.multiview if multiview is None else multiview
    return distance_matrix(model, loss, data, cfg.model.input_size, mv, cfg.eval.batch_size, amp=cfg.train.amp)


def test_ranks(model: SBIRModel, loss: nn.Module, data: SplitTensors, cfg: RunConfig,
               multiview: bool | None = None) -> np.ndarray:
    """The rank of each query's true photo (``sbir_core.metrics.true_match_ranks``), for per-query comparisons."""
    return true_match_ranks(_run_distances(model, loss, data, cfg, multiview), data.positives)


def evaluate(model: SBIRModel, loss: nn.Module, data: SplitTensors, cfg: RunConfig,
             multiview: bool | None = None) -> dict[str, float]:
    """acc@1/5/10, mean rank, percentile of ``data``'s sketches against its gallery (see ``sbir_core.metrics``)."""
    return retrieval_metrics(_run_distances(model, loss, data, cfg, multiview), data.positives)


test_ranks.__test__ = False  # a library function, not a pytest test


# --- training -------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    model: SBIRModel  # holding the best validation weights (the last ones without validation)
    loss: nn.Module
    history: list[dict[str, Any]]
    best: dict[str, Any]  # {"epoch": int, "metrics": {...}}
    wall_time_s: float  # training time of this call (a resumed run counts only its own part; a cached run its own)
    out_dir: Path | None
    cached: bool = False  # loaded from the run cache (sbir_core.cache) instead of trained


def _optimizer(cfg: RunConfig, model: nn.Module, loss_fn: nn.Module) -> torch.optim.Optimizer:
    """The model's parameters with ``train.weight_decay``; the loss's own (HOLEF's W, Mahalanobis' L) without: they
    have their own regulariser towards the identity, which decay towards zero would fight."""
    t = cfg.train
    groups = [{"params": list(model.parameters()), "weight_decay": t.weight_decay}]
    if list(loss_fn.parameters()):
        groups.append({"params": list(loss_fn.parameters()), "weight_decay": 0.0})
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum)
    return torch.optim.Adam(groups, lr=t.lr)


def _scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch learning-rate schedule: ``constant`` (the papers) or ``cosine`` decay to zero over the run."""
    if cfg.train.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


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
    validate_config(cfg)
    data = split if isinstance(split, SplitTensors) else SplitTensors.from_split(split, cfg.train.data_size)
    if data.sketches.shape[1] < cfg.model.input_size:
        raise ConfigError("train.data_size", f"the data are {data.sketches.shape[1]} px, smaller than "
                          f"model.input_size ({cfg.model.input_size})")
    if cfg.train.negatives == "annotated" and data.triplets is None:
        raise ConfigError("train.negatives", "'annotated' needs a dataset with triplet annotations (QMUL-V1)")
    return carve_validation(data, cfg.train.val_fraction, cfg.seed)


@dataclass
class _State:
    """Everything a training run changes, as ``fit`` carries it from epoch to epoch and through a checkpoint."""

    model: SBIRModel
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    gen: torch.Generator
    history: list[dict[str, Any]]
    best: dict[str, Any]
    epoch: int = 0

    def checkpoint(self) -> dict[str, Any]:
        """All weights, optimiser and schedule states, and every random generator (CPU, CUDA, the sampler's)."""
        return {"epoch": self.epoch, "model": self.model.state_dict(), "loss": self.loss_fn.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "generator": self.gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "history": self.history, "best": self.best}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``checkpoint()``, loaded to the CPU (``map_location="cpu"``) from any device."""
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])  # moves its tensors to the parameters' device
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state["scaler"]:  # a CPU run saves an empty scaler state
            self.scaler.load_state_dict(state["scaler"])
        self.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"][:torch.cuda.device_count()])
        self.history, self.best, self.epoch = state["history"], state["best"], state["epoch"]


def _new_state(cfg: RunConfig, device: torch.device) -> _State:
    seed_everything(cfg.seed)
    # channels-last convolutions: about 1.2-1.4x faster on the CPU (oneDNN), and the layout AMP wants on CUDA
    model = build_model(cfg.model)
    if cfg.model.init is not None:
        load_init(model, cfg.model.init)
    model = model.to(device, memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.loss, model.embed_dim).to(device)
    optimizer = _optimizer(cfg, model, loss_fn)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp and device.type == "cuda")
    return _State(model, loss_fn, optimizer, _scheduler(cfg, optimizer), scaler,
                  torch.Generator().manual_seed(cfg.seed), [], {"epoch": None, "metrics": None})


def load_init(model: nn.Module, path: str | Path) -> list[str]:
    """Start ``model`` from the weights saved at ``path`` (``{"model": state_dict}``: a run's ``best.pt``, a run-cache
    entry's ``weights.pt``), as Sketch Me That Shoe pretrains in stages (Yu et al., CVPR 2016, Sec. 3.3). Every
    tensor whose name and shape match is copied; the others keep their fresh initialisation, and a warning names
    them. Returns the names copied. ``ConfigError("model.init")`` when the file does not load or nothing matches."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as err:  # a truncated file, a file of another kind
        raise ConfigError("model.init", f"{path} does not load as saved weights "
                          f"({type(err).__name__}: {' '.join(str(err).split())[:120]})") from None
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError("model.init", f"{path}: none of its weights fits this model (names or shapes differ)")
    model.load_state_dict(matched, strict=False)
    fresh = sorted(set(own) - set(matched))
    if fresh:
        warnings.warn(f"model.init: {len(matched)} of {len(own)} tensors from {path}; {len(fresh)} start fresh "
                      f"({', '.join(fresh[:4])}{', ...' if len(fresh) > 4 else ''})", stacklevel=2)
    return sorted(matched)


def _epoch_triplets(cfg: RunConfig, train: SplitTensors, gen: torch.Generator) -> torch.Tensor:
    if cfg.train.negatives == "annotated":
        assert train.triplets is not None
        return sample_annotated(train.triplets, len(train), train.n_photos, cfg.train.hard_ratio, gen)
    return sample_triplets(train.positives, train.n_photos, gen)


def train_epoch(cfg: RunConfig, st: _State, train: SplitTensors, device: torch.device, bar: Any) -> list[float]:
    """One pass over the training sketches as anchors; returns the loss of every step."""
    st.model.train()
    in_batch, size, flip = cfg.train.negatives == "in-batch", cfg.model.input_size, cfg.train.flip
    losses = []
    for batch in _batches(_epoch_triplets(cfg, train, st.gen), cfg.train.batch_size):
        photo_idx = batch[:, 1] if in_batch else torch.cat([batch[:, 1], batch[:, 2]])
        a = sketch_input(random_views(train.sketches[batch[:, 0]], size, flip, st.gen))
        p = photo_input(random_views(train.photos[photo_idx], size, flip, st.gen))
        with torch.autocast(device.type, enabled=st.scaler.is_enabled()):
            ea, ep = st.model.embed(*(x.to(device, memory_format=torch.channels_last) for x in (a, p)))
        ea, ep = ea.float(), ep.float()
        if in_batch:  # every other photo of the batch is a negative of each anchor
            i, j = in_batch_pairs(batch[:, 1])
            if len(i) == 0:  # all anchors show one photo: no negatives, nothing to learn from
                continue
            loss = st.loss_fn(ea[i], ep[i], ep[j])
        else:
            loss = st.loss_fn(ea, *ep.chunk(2))
        loss = loss + st.loss_fn.regularizer().to(device)
        st.optimizer.zero_grad(set_to_none=True)
        st.scaler.scale(loss).backward()
        st.scaler.step(st.optimizer)
        st.scaler.update()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(epoch=st.epoch + 1, loss=f"{losses[-1]:.4f}")
    return losses


def _validate(cfg: RunConfig, st: _State, val: SplitTensors, row: dict[str, Any]) -> dict[str, Any] | None:
    """Score the validation split into ``row``; the weights when this epoch is the best so far, else None."""
    metrics = evaluate(st.model, st.loss_fn, val, cfg)
    row.update({f"val_{k}": v for k, v in metrics.items()})
    if st.best["metrics"] is None or _selection_key(metrics) > _selection_key(st.best["metrics"]):
        st.best = {"epoch": st.epoch, "metrics": metrics}
        return _weights(st.model, st.loss_fn)
    return None


@contextlib.contextmanager
def _torch_settings(threads: int | None, device: torch.device) -> Iterator[None]:
    """For one run: the CPU thread count, and deterministic algorithms (without them, two CPU threads accumulating
    index gradients give different bits run after run), without their debugging fill of every new tensor (10% of a
    step, and it changes no result); all restored afterwards."""
    import torch.utils.deterministic as det

    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    old_warn, old_fill = torch.is_deterministic_algorithms_warn_only_enabled(), det.fill_uninitialized_memory
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        det.fill_uninitialized_memory = old_fill


def fit(cfg: RunConfig, split: SplitLike | SplitTensors, out_dir: str | Path | None = None,
        device: str | torch.device = "auto", resume: bool = True, stop_after: int | None = None,
        progress: bool = True) -> TrainResult:
    """Train ``cfg.model.name`` with ``cfg.loss`` on ``split`` (a training split); see the module docstring.

    ``out_dir`` receives ``config.json``, ``last.pt`` (after every epoch), ``best.pt`` and ``log.jsonl``; with
    ``resume`` an existing ``last.pt`` there is continued, whichever device wrote it. ``stop_after`` ends the call
    after that many epochs in total (an "interruption" for tests and notebooks), leaving a resumable checkpoint.
    The torch thread count and determinism flags are restored on return.
    """
    device = get_device(device) if not isinstance(device, torch.device) else device
    out = Path(out_dir) if out_dir is not None else None
    train, val = prepare_data(cfg, split)
    if train.n_photos < 2:
        raise ConfigError("train.val_fraction", f"training needs at least 2 photos, {train.n_photos} are left")
    with _torch_settings(cfg.train.num_threads, device):
        st = _new_state(cfg, device)
        if out is not None:
            _check_or_write_config(cfg, out)
            if resume and (out / CHECKPOINT).exists():
                st.restore(torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True))
        epochs = cfg.train.epochs if stop_after is None else min(cfg.train.epochs, stop_after)
        steps = max(1, math.ceil(len(train) / cfg.train.batch_size))
        bar = tqdm(total=(epochs - st.epoch) * steps, desc="train", leave=False, disable=progress_disabled(progress))
        best_state, t0 = None, time.perf_counter()
        while st.epoch < epochs:
            t_epoch = time.perf_counter()
            losses = train_epoch(cfg, st, train, device, bar)
            st.epoch += 1
            row: dict[str, Any] = {"epoch": st.epoch, "train_loss": float(np.mean(losses)),
                                   "lr": st.optimizer.param_groups[0]["lr"],
                                   "epoch_time_s": round(time.perf_counter() - t_epoch, 3)}
            st.scheduler.step()
            if val is not None and (st.epoch % cfg.train.eval_every == 0 or st.epoch == cfg.train.epochs):
                improved = _validate(cfg, st, val, row)
                if improved is not None:
                    best_state = improved
                    if out is not None:
                        _save({"epoch": st.epoch, **improved, "metrics": st.best["metrics"]}, out / BEST)
                bar.set_postfix(epoch=st.epoch, loss=f"{row['train_loss']:.4f}", val_acc1=f"{row['val_acc@1']:.3f}")
            st.history.append(row)
            if out is not None:
                _checkpoint(st, out, with_validation=val is not None)
        bar.close()
        wall = time.perf_counter() - t0
        if val is not None and st.best["epoch"] is not None:  # hand back the selected weights
            if best_state is None and out is not None:
                best_state = torch.load(out / BEST, map_location="cpu", weights_only=True)
            if best_state is not None:
                st.model.load_state_dict(best_state["model"])
                st.loss_fn.load_state_dict(best_state["loss"])
    st.model.eval()
    return TrainResult(st.model, st.loss_fn, st.history, st.best, wall, out)


def _checkpoint(st: _State, out: Path, with_validation: bool) -> None:
    """``last.pt`` and ``log.jsonl`` after every epoch; without validation the latest weights are the selected ones."""
    if not with_validation:
        st.best = {"epoch": st.epoch, "metrics": None}
        _save({"epoch": st.epoch, **_weights(st.model, st.loss_fn), "metrics": None}, out / BEST)
    _save(st.checkpoint(), out / CHECKPOINT)
    _write_log(st.history, out / LOG)


def cpu_weights(model: nn.Module, loss_fn: nn.Module) -> dict[str, Any]:
    """``{"model": ..., "loss": ...}`` state dicts on the CPU: what a weights file holds (read by ``with_weights`` and
    ``load_init``)."""
    cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
    return {"model": cpu(model.state_dict()), "loss": cpu(loss_fn.state_dict())}


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
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            raise ConfigError("--out", f"{path} is not a run configuration") from None
        mine = json.loads(cfg.to_json())
        if saved != mine:
            keys = sorted(_diff_keys(saved, mine))
            raise ConfigError("--out", f"{out} holds a run trained with other settings ({', '.join(keys)}); "
                              "use a new run folder")
        return
    with atomic_path(path) as tmp:
        tmp.write_text(cfg.to_json() + "\n")


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two configuration dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b))
                for k in _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]


# --- loading a trained run ------------------------------------------------------------------------------------------
def load_run(run_dir: str | Path, device: str | torch.device = "auto",
             checkpoint: str = BEST) -> tuple[RunConfig, SBIRModel, nn.Module]:
    """The configuration, model and loss of a run folder, with the weights of ``checkpoint`` (``best.pt``)."""
    run_dir = Path(run_dir)
    device = get_device(device) if not isinstance(device, torch.device) else device
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir / CONFIG}: not a training run folder (no config.json)")
    cfg = RunConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    if not (run_dir / checkpoint).exists():
        raise FileNotFoundError(f"{run_dir / checkpoint}: no checkpoint yet (the run has not finished an epoch)")
    return (cfg, *with_weights(cfg, run_dir / checkpoint, device))


def with_weights(cfg: RunConfig, path: Path, device: torch.device) -> tuple[SBIRModel, nn.Module]:
    """The model and loss of ``cfg`` with the ``{"model": ..., "loss": ...}`` weights saved at ``path``, in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(cfg.model)
    loss_fn = build_loss(cfg.loss, model.embed_dim)
    model.load_state_dict(state["model"])
    loss_fn.load_state_dict(state["loss"])
    return model.to(device).eval(), loss_fn.to(device)


def git_commit(path: str | Path = Path(__file__).parent) -> str | None:
    """The commit of the checkout holding ``path`` (``+dirty`` when ``sbir_core`` has uncommitted changes), or None."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=path, capture_output=True, text=True, check=True).stdout  # noqa
        commit = run("rev-parse", "HEAD").strip()
        dirty = run("status", "--porcelain", "--", str(Path(__file__).parent)).strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def device_description(device: torch.device, threads: int | None = None) -> str:
    """``"cuda: <name>"`` or ``"cpu: <n> threads"`` (``threads``: those a run set for itself; default torch's)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {threads or torch.get_num_threads()} threads"


__all__ = ["SplitTensors", "TrainResult", "carve_validation", "cpu_weights", "device_description", "distance_matrix",
           "eval_views", "evaluate", "fit", "git_commit", "in_batch_pairs", "load_init", "load_run", "prepare_data",
           "random_views", "read_log", "sample_annotated", "sample_triplets", "split_counts", "test_ranks",
           "train_epoch", "validation_photos", "with_weights"]
