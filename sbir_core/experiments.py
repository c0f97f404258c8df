"""Experiments as code: a named comparison run as independent jobs, one per variant and seed, and one record.

``run_experiment("ijcv-table4", profile="book")`` trains every (variant, seed) job that has no result yet in the
output folder (a stopped experiment resumes where it stopped), each in its own process through submitit (Slurm where
a cluster is present, local processes otherwise, in waves of one job per core on a CPU), then writes
``<out>/record.json``: provenance (configurations, commit, device, wall times, the command) and, for each claim, the
paired bootstrap over seeds and test queries (:func:`sbir_core.compare.paired_bootstrap`) with its verdict and the
smallest difference the experiment could have resolved (the interval's half-width).

Jobs train through the run cache (:func:`sbir_core.cache.cached_fit`, one thread on a CPU as
:func:`~sbir_core.cache.cached_fit_many`), so a chapter's live run and an experiment share their models.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sbir_core.cache import cached_fit
from sbir_core.compare import paired_bootstrap
from sbir_core.config import ConfigError, override, preset
from sbir_core.data import load_dataset
from sbir_core.metrics import acc_at_k
from sbir_core.runtime import atomic_path, get_device, progress_disabled, usable_cpus
from sbir_core.train import SplitTensors, device_description, git_commit, test_ranks

ROOT = Path(__file__).resolve().parents[1]
VERSION = 1


@dataclass(frozen=True)
class Claim:
    """``better`` beats ``worse`` on per-query hits at ``k`` (acc@k), as a paper claims."""

    text: str
    better: str
    worse: str
    k: int = 1


@dataclass(frozen=True)
class Profile:
    """A budget: configuration overrides, the training photos kept (None: all) and the seeds."""

    overrides: tuple[str, ...]
    train_photos: int | None
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Experiment:
    """Variants of one preset (each a list of overrides), the claims between them, and the budgets to run them at."""

    name: str
    about: str
    variants: dict[str, tuple[str, ...]]
    claims: tuple[Claim, ...]
    profiles: dict[str, Profile]
    category: str = "shoe"  # the synthetic category, when no dataset folder is given
    preset: str = "book"


# Chapter 03's and 04's live runs are the "book" profile (their parameters cells); "full" is every training photo,
# the preset's 20 epochs and ten seeds.
_CHAPTER = Profile(("train.epochs=4",), 300, (0, 1, 2))
_FULL = Profile((), None, tuple(range(10)))

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "ijcv-table4", "the IJCV 2020 Table 4 ablation: attention, coarse-fine fusion, the shortcut (chapter 03)",
        {"Base": ("model.name=triplet-sn",), "Base + attention": ("model.name=attention",),
         "Base + CFF": ("model.name=fusion",), "Full": ("model.name=attention-fusion",),
         "Full, no shortcut": ("model.name=attention-fusion", 'model.options={"residual": false}')},
        (Claim("attention improves on Base", "Base + attention", "Base"),
         Claim("CFF improves on Base", "Base + CFF", "Base"),
         Claim("Full improves on Base", "Full", "Base"),
         Claim("the shortcut helps", "Full", "Full, no shortcut")),
        {"book": _CHAPTER, "full": _FULL}),
    Experiment(
        "losses", "Euclidean, Mahalanobis and HOLEF losses on the full DSSA model (chapter 04)",
        {"Euclidean (first order)": ("model.name=attention-fusion", "loss.name=triplet"),
         "Mahalanobis": ("model.name=attention-fusion", "loss.name=mahalanobis"),
         "HOLEF": ("model.name=attention-fusion", "loss.name=holef")},
        (Claim("HOLEF improves on Euclidean", "HOLEF", "Euclidean (first order)"),
         Claim("HOLEF improves on Mahalanobis", "HOLEF", "Mahalanobis")),
        {"book": _CHAPTER, "full": _FULL}),
)}


@dataclass(frozen=True)
class Job:
    """One training run of an experiment: everything a worker process needs."""

    experiment: str
    variant: str
    seed: int
    preset: str
    overrides: tuple[str, ...]
    train_photos: int | None
    data_root: str
    device: str
    path: str  # where its result goes

    def run(self) -> dict[str, Any]:
        """Train (or load from the run cache), test, and write the result atomically; returns it."""
        start = time.perf_counter()
        device = get_device(self.device)
        cfg = override(preset(self.preset), [*self.overrides, f"seed={self.seed}"])
        if device.type == "cpu":
            cfg = override(cfg, ["train.num_threads=1"])
        data = load_dataset(self.data_root)
        train = SplitTensors.from_split(data.train, cfg.train.data_size)
        if self.train_photos is not None:
            train = train.subset(np.arange(min(self.train_photos, train.n_photos)))
        test = SplitTensors.from_split(data.test, cfg.train.data_size)
        result = cached_fit(cfg, train, device=device, progress=False)
        ranks = test_ranks(result.model, result.loss, test, cfg)
        out = {"variant": self.variant, "seed": self.seed, "config": cfg.to_dict(), "ranks": ranks.tolist(),
               "train_sketches": len(train), "gallery": test.n_photos, "cached": result.cached,
               "train_time_s": result.wall_time_s, "job_time_s": time.perf_counter() - start,
               "device": device_description(device, cfg.train.num_threads)}
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(out))
        return out


def plan(name: str, profile: str, out: str | os.PathLike, seeds: Sequence[int] | None = None,
         data_root: str | os.PathLike | None = None, device: str = "auto") -> list[Job]:
    """Every job of experiment ``name`` at ``profile`` (``seeds`` replaces the profile's), in variant order."""
    if name not in EXPERIMENTS:
        raise ConfigError("experiment", f"{name!r} is not one of {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    if profile not in exp.profiles:
        raise ConfigError("profile", f"{profile!r} is not one of {', '.join(exp.profiles)}")
    prof = exp.profiles[profile]
    if data_root is None:
        from sbir_core.data.synthetic import ensure_synthetic

        data_root = ensure_synthetic("book", 0) / exp.category
    jobs_dir = Path(out) / "jobs"
    return [Job(name, variant, seed, exp.preset, (*prof.overrides, *overrides), prof.train_photos, str(data_root),
                device, str(jobs_dir / f"{_slug(variant)}__seed{seed}.json"))
            for variant, overrides in exp.variants.items() for seed in (prof.seeds if seeds is None else seeds)]


def _slug(text: str) -> str:
    """``"Base + attention"`` → ``"base-attention"``: a job's file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _run_job(job: Job) -> str:
    """A worker's entry point (submitit pickles the job): the result's path."""
    job.run()
    return job.path


def run_jobs(jobs: Sequence[Job], folder: str | os.PathLike, executor: str = "auto", workers: int | None = None,
             timeout_min: int = 24 * 60, progress: bool = True) -> list[Job]:
    """Run the jobs whose result is missing; returns those it ran.

    ``executor``: ``"auto"`` (submitit: Slurm when present, else local processes), ``"local"``, or ``"debug"`` (in
    this process, one after the other). Locally at most ``workers`` jobs (default: one per usable core) run at once.
    """
    import submitit

    todo = [job for job in jobs if not Path(job.path).is_file()]
    if not todo:
        return []
    bar = tqdm(total=len(todo), desc="jobs", unit="job", disable=progress_disabled(progress))
    if executor == "debug":
        for job in todo:
            job.run()
            bar.update()
        bar.close()
        return todo
    if executor not in ("auto", "local"):
        raise ConfigError("executor", f"{executor!r} is not one of auto, local, debug")
    pool = submitit.AutoExecutor(folder=Path(folder) / "submitit", cluster="local" if executor == "local" else None)
    pool.update_parameters(timeout_min=timeout_min, cpus_per_task=1)
    wave = len(todo) if pool.cluster == "slurm" else (workers or usable_cpus())
    for lo in range(0, len(todo), wave):
        submitted = [pool.submit(_run_job, job) for job in todo[lo:lo + wave]]
        for job, handle in zip(todo[lo:lo + wave], submitted):
            try:
                handle.result()
            except Exception as error:  # the worker's traceback is in its submitit log
                raise RuntimeError(f"{job.variant} seed {job.seed} failed: {str(error).strip().splitlines()[-1]} "
                                   f"(log: {handle.paths.stderr})") from None
            bar.update()
    bar.close()
    return todo


def summarise(name: str, jobs: Sequence[Job], wall_time_s: float, command: str | None = None,
              commit: str | None = None) -> dict[str, Any]:
    """The experiment's record from its jobs' results: per-variant scores and every claim's verdict."""
    exp = EXPERIMENTS[name]
    results = {(job.variant, job.seed): json.loads(Path(job.path).read_text()) for job in jobs}
    seeds = sorted({job.seed for job in jobs})
    ranks = {v: np.array([results[v, s]["ranks"] for s in seeds]) for v in exp.variants}
    variants = {v: {"acc@1": [acc_at_k(r, 1) for r in ranks[v]], "acc@10": [acc_at_k(r, 10) for r in ranks[v]],
                    "mean_rank": [float(r.mean()) for r in ranks[v]]} for v in exp.variants}
    claims = []
    for claim in exp.claims:
        v = paired_bootstrap(ranks[claim.better] <= claim.k, ranks[claim.worse] <= claim.k)
        claims.append({"claim": claim.text, "better": claim.better, "worse": claim.worse, "metric": f"acc@{claim.k}",
                       "difference": v.delta, "low": v.low, "high": v.high, "verdict": v.label,
                       "resolvable": (v.high - v.low) / 2})
    first = results[jobs[0].variant, jobs[0].seed]
    return {"version": VERSION, "experiment": name, "about": exp.about, "seeds": seeds, "variants": variants,
            "claims": claims, "queries": int(ranks[jobs[0].variant].shape[1]), "gallery": first["gallery"],
            "train_sketches": first["train_sketches"], "data": jobs[0].data_root,
            "configs": {v: results[v, seeds[0]]["config"] for v in exp.variants},
            "provenance": {"commit": commit or git_commit(), "device": first["device"], "torch": torch.__version__,
                           "machine": platform.processor() or platform.machine(),
                           "command": command or shlex.join(sys.argv),
                           "wall_time_s": wall_time_s,
                           "train_time_s": sum(r["train_time_s"] for r in results.values())}}


def run_experiment(name: str, profile: str = "book", out: str | os.PathLike | None = None,
                   seeds: Sequence[int] | None = None, data_root: str | os.PathLike | None = None,
                   device: str = "auto", executor: str = "auto", workers: int | None = None,
                   command: str | None = None) -> dict[str, Any]:
    """Plan, run what is missing, and write ``<out>/record.json`` (default: ``runs/experiments/<name>-<profile>``)."""
    out = Path(out) if out is not None else ROOT / "runs" / "experiments" / f"{name}-{profile}"
    jobs = plan(name, profile, out, seeds, data_root, device)
    start, commit = time.perf_counter(), git_commit()  # the code the jobs run
    run_jobs(jobs, out, executor, workers)
    record = summarise(name, jobs, time.perf_counter() - start, command, commit)
    with atomic_path(out / "record.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record


def figure(record: dict[str, Any]) -> Any:
    """A record as a picture (seaborn): acc@1 of every seed and its mean with a 95% interval per variant, and each
    claim's paired difference with its bootstrap interval. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows = [{"variant": v, "seed": seed, "acc@1 (%)": 100 * a}
            for v, scores in record["variants"].items() for seed, a in zip(record["seeds"], scores["acc@1"])]
    frame = pd.DataFrame(rows)
    height = 0.6 * max(len(record["variants"]), len(record["claims"])) + 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, height), gridspec_kw={"width_ratios": [1, 1.2]})
    sns.stripplot(frame, x="acc@1 (%)", y="variant", color="0.6", size=4, ax=left)
    sns.pointplot(frame, x="acc@1 (%)", y="variant", errorbar=("ci", 95), linestyle="none", color="C0",
                  markers="D", ax=left)
    left.set(title=f"{record['experiment']}: acc@1 over {len(record['seeds'])} seeds (bars: 95% interval)",
             ylabel="")
    claims = record["claims"]
    y = np.arange(len(claims))
    colours = {"reproduced": "C2", "contradicted": "C3", "not resolved": "0.5"}
    for i, c in enumerate(claims):
        right.errorbar(100 * c["difference"], i, xerr=[[100 * (c["difference"] - c["low"])],
                                                       [100 * (c["high"] - c["difference"])]],
                       fmt="o", color=colours[c["verdict"]], capsize=4)
    right.axvline(0, color="k", lw=0.8)
    right.set(yticks=y, yticklabels=[f"{c['claim']}\n({c['verdict']})" for c in claims], ylim=(len(claims) - 0.5, -0.5),
              xlabel=f"difference in {claims[0]['metric'] if claims else 'acc@1'} (points; paired bootstrap, 95%)",
              title="the claims")
    fig.tight_layout()
    return fig


__all__ = ["Claim", "EXPERIMENTS", "Experiment", "Job", "Profile", "figure", "plan", "run_experiment", "run_jobs",
           "summarise"]
