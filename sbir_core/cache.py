"""The run cache: a trained model is stored once and loaded wherever the same training is asked for again.

``cached_fit(cfg, train)`` is ``fit(cfg, train)`` behind a cache keyed by everything that determines the trained
weights: the run configuration, a fingerprint of the training tensors (every byte of the sketches, photos and
labels), the tensors of the weights it starts from (``model.init``: names, shapes and values, not the file's bytes,
which carry the temporary name it was written under), the source of the training code
(``TRAINING_CODE``), the torch version, the device type and, on the CPU, the kernel set and thread count (each takes
another float path). Chapter 04's Euclidean runs are chapter 03's Full runs, and later chapters load chapter 02's
model, in ``make book`` and in ``make test`` alike.

An entry is a folder ``<cache>/<key>/`` with ``weights.pt`` (the selected weights of the model and the loss),
``run.json`` (history, selected epoch, training time, the key's parts) and ``checksums.json`` (SHA-256 of both). It is
written to a temporary folder and renamed into place, so a crash leaves no half entry. An entry whose files are
missing, truncated or fail their checksum is reported in one line on stderr and retrained; it is never used. A run
being trained checkpoints every epoch in ``<cache>/.<key>.partial/`` (``fit``'s run folder), so a stopped run (a job
killed, a machine gone) resumes at its last epoch, to the same model; its training time counts the earlier epochs.

``cached_fit_many(cfgs, train)`` does the same for a list of runs (a chapter's variants and seeds): on the CPU the
runs not cached yet train side by side, one process and one thread each.

The cache lives in ``$SBIR_CACHE`` if set (``off`` disables it), else in ``runs/cache`` of a source checkout (git
ignores ``runs/``), else in ``~/.cache/sbir_core/runs``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from sbir_core.config import RunConfig, override
from sbir_core.runtime import atomic_path, get_device, map_in_processes, usable_cpus
from sbir_core.train import CHECKPOINT, CONFIG, LOG, SplitTensors, TrainResult, cpu_weights, fit, with_weights

#: The package sources that decide what training produces (relative to ``sbir_core/``).
TRAINING_CODE = ("train.py", "config.py", "losses.py", "runtime.py", "models")
FILES = ("weights.pt", "run.json")
MANIFEST = "checksums.json"
_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path | None:
    """Where entries live (see the module docstring); None when ``SBIR_CACHE=off``."""
    env = os.environ.get("SBIR_CACHE")
    if env:
        return None if env.strip().lower() == "off" else Path(env)
    repo = _PACKAGE.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "runs" / "cache"
    return Path.home() / ".cache" / "sbir_core" / "runs"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_fingerprint(path: Path) -> str:
    """SHA-256 of the ``"model"`` tensors that ``load_init`` copies from ``path``: their names, dtypes, shapes and
    values. A file that does not load is keyed by its bytes; ``fit`` then says what is wrong with it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception:
        return _sha256(path)
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def code_version() -> str:
    """SHA-256 of the training code's sources (``TRAINING_CODE``)."""
    digest = hashlib.sha256()
    for entry in TRAINING_CODE:
        path = _PACKAGE / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(_PACKAGE)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def data_fingerprint(data: SplitTensors) -> str:
    """SHA-256 of every byte of a training split: sketches, photos, positives and photo names."""
    digest = hashlib.sha256()
    for t in (data.sketches, data.photos, data.positives):
        digest.update(str((t.dtype, tuple(t.shape))).encode())
        digest.update(t.contiguous().numpy().tobytes())
    digest.update(json.dumps(data.photo_names).encode())
    return digest.hexdigest()


def cache_key(cfg: RunConfig, data: SplitTensors, device: torch.device) -> tuple[str, dict[str, Any]]:
    """The entry name and the parts it is made of."""
    threads = cfg.train.num_threads or torch.get_num_threads()
    config = cfg.to_dict()
    config["model"]["init"] = None  # the weights it names are keyed by their tensors: any path to them, one model
    parts = {"config": config, "data": data_fingerprint(data), "code": code_version(),
             "init": weights_fingerprint(Path(cfg.model.init)) if cfg.model.init else None,
             "torch": torch.__version__, "device": device.type,
             # the float path: another kernel set (ATEN_CPU_CAPABILITY) or thread count trains another model
             "kernels": torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else torch.version.cuda,
             "threads": threads if device.type == "cpu" else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32], parts


def _damage(entry: Path) -> str | None:
    """Why ``entry`` cannot be used, or None when every file is there and matches its checksum."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        return f"{MANIFEST} unreadable ({type(err).__name__})"
    for name in FILES:
        if not (entry / name).is_file():
            return f"{name} missing"
        if manifest.get(name) != _sha256(entry / name):
            return f"{name} fails its checksum"
    return None


def _load(entry: Path, cfg: RunConfig, device: torch.device) -> TrainResult:
    info = json.loads((entry / "run.json").read_text())
    model, loss = with_weights(cfg, entry / "weights.pt", device)
    return TrainResult(model, loss, info["history"], info["best"], info["wall_time_s"], None, cached=True)


def _store(entry: Path, result: TrainResult, parts: dict[str, Any]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        torch.save(cpu_weights(result.model, result.loss), tmp / "weights.pt")
        info = {"history": result.history, "best": result.best, "wall_time_s": result.wall_time_s, "key": parts}
        (tmp / "run.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        (tmp / MANIFEST).write_text(json.dumps({n: _sha256(tmp / n) for n in FILES}, indent=1) + "\n")
        if entry.exists():  # a damaged entry: replace it, but only if it holds nothing the cache did not write
            stray = sorted(p.name for p in entry.iterdir() if p.name not in (*FILES, MANIFEST))
            if stray:
                raise RuntimeError(f"{entry}: not a run-cache entry (holds {stray}); move it away or set SBIR_CACHE")
            shutil.rmtree(entry)
        os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_fit(cfg: RunConfig, train: SplitTensors, device: str | torch.device = "auto",
               progress: bool = True) -> TrainResult:
    """``fit(cfg, train)``, or the stored result of the same training; see the module docstring."""
    device = get_device(device) if not isinstance(device, torch.device) else device
    root = cache_dir()
    if root is None:
        return fit(cfg, train, device=device, progress=progress)
    return _cached_fit(root, cfg, train, device, progress)


def _cached_fit(root: Path, cfg: RunConfig, train: SplitTensors, device: torch.device, progress: bool) -> TrainResult:
    key, parts = cache_key(cfg, train, device)
    entry = root / key
    if entry.exists():
        problem = _damage(entry)
        if problem is None:
            return _load(entry, cfg, device)
        print(f"run cache: {entry}: damaged ({problem}); retraining", file=sys.stderr)
    partial = root / f".{key}.partial"  # fit's checkpoint after every epoch: a stopped run resumes there
    _same_start(partial, cfg)
    done = _restored_time(partial)
    result = fit(cfg, train, partial, device=device, progress=progress)
    result = replace(result, wall_time_s=done + result.wall_time_s, out_dir=None)
    _store(entry, result, parts)
    shutil.rmtree(partial)
    return result


def _same_start(partial: Path, cfg: RunConfig) -> None:
    """Point a stopped run's ``config.json`` at ``cfg.model.init``: the key holds the tensors it starts from, so the
    same weights under another path (another experiment's folder) continue the same run."""
    path = partial / CONFIG
    try:
        saved = json.loads(path.read_text())
        if saved["model"]["init"] == cfg.model.init:
            return
        saved["model"]["init"] = cfg.model.init
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or not a configuration: fit says which
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


def _restored_time(partial: Path) -> float:
    """The training time of the epochs an interrupted run already did (their ``epoch_time_s``; 0 for a new run)."""
    log = partial / LOG
    if not (partial / CHECKPOINT).exists() or not log.exists():
        return 0.0
    return float(sum(json.loads(line)["epoch_time_s"] for line in log.read_text().splitlines() if line.strip()))


def _train_job(root: Path, cfg: RunConfig, train: SplitTensors) -> None:
    """One job of :func:`cached_fit_many`, in a worker process: train on the CPU and store the entry."""
    _cached_fit(root, cfg, train, torch.device("cpu"), progress=False)


def cached_fit_many(cfgs: Sequence[RunConfig], train: SplitTensors, device: str | torch.device = "auto",
                    workers: int | None = None, progress: bool = True) -> list[TrainResult]:
    """:func:`cached_fit` for several configurations, trained side by side on the CPU.

    On the CPU every run trains on ONE thread (``train.num_threads = 1``, part of its cache key), so its float path
    and its result do not depend on the core count; the runs not cached yet train in ``workers`` processes at once
    (default: one per usable core). Small networks use one core each far better than two cores together. On CUDA
    the runs train one after the other. With the cache off (``SBIR_CACHE=off``) the workers hand their weights back
    through a temporary folder that is removed afterwards.
    """
    device = get_device(device) if not isinstance(device, torch.device) else device
    if device.type != "cpu":
        return [cached_fit(cfg, train, device, progress) for cfg in cfgs]
    cfgs = [override(cfg, ["train.num_threads=1"]) for cfg in cfgs]
    with tempfile.TemporaryDirectory(prefix="sbir-runs-") as scratch:
        root = cache_dir() or Path(scratch)
        keys = [cache_key(cfg, train, device)[0] for cfg in cfgs]
        new = {key for key in keys if not (root / key).exists() or _damage(root / key) is not None}
        todo = [cfgs[keys.index(key)] for key in sorted(new, key=keys.index)]
        workers = min(len(todo), usable_cpus() if workers is None else workers)
        if workers > 1:
            map_in_processes(_train_job, [(root, cfg, train) for cfg in todo], workers, "training", progress)
        return [replace(_cached_fit(root, cfg, train, device, progress), cached=key not in new)
                for cfg, key in zip(cfgs, keys)]


__all__ = ["TRAINING_CODE", "cache_dir", "cache_key", "cached_fit", "cached_fit_many", "code_version",
           "data_fingerprint"]
