"""Adaptive FG-SBIR (ECCV 2022) on the synthetic collection, as a results record: the baselines, ANIL and ours (with
the poster's regulariser ablation and a fixed margin) adapted to held-out categories, or (``--level user``) to
held-out drawers of one category.

    python results/run_adaptive_study.py results/adaptive_synthetic_study.json --device cuda
    python results/run_adaptive_study.py results/adaptive_synthetic_users.json --level user --held-out 8 9 \
        --shots 1 5 --adapt-steps 1 3 10 --device cpu --threads 1
    python results/run_adaptive_study.py out.json --seeds 0 --meta-steps 20 --device cpu   # a quick look

For each seed: the supervised start on the categories not held out (``sbir_core.meta.build_meta_run`` with
``meta_steps=0``; the "no adaptation" baseline, and the start of fine-tuning and of every meta-learner), then one
meta-training run per variant from it. Each model is adapted to each held-out category from k training pairs (the
support drawn with the same seed) and tested on that category's test split. The upper bound trains the same network
on each held-out category's full training split; at user level, on the whole category's training split, the
held-out drawers' training sketches included. ``--adapt-steps`` adapts ours with other numbers of inner steps too.
The record keeps, per (variant, seed, category, k), the metrics
and the rank of every test sketch's photo (for paired statistics), and the provenance (command, commit, device,
wall time); never any data. MAML and sign-MAML (``--variants``) adapt every parameter and cost several times more.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import sys
import time

import torch

from sbir_core import meta
from sbir_core.cache import cached_fit
from sbir_core.config import preset
from sbir_core.data import load_collection
from sbir_core.data.synthetic import ensure_synthetic
from sbir_core.metrics import retrieval_metrics, true_match_ranks
from sbir_core.runtime import atomic_path, get_device
from sbir_core.train import SplitTensors, device_description, git_commit

#: variant -> (method preset, changes): ANIL, ours, the poster's ablation rows (L_D, L_S, L_C), a fixed margin.
VARIANTS = {
    "anil": ("anil", {}),
    "ours": ("ours", {}),
    "ours without L_D": ("ours", {"lambda_domain": 0.0}),
    "ours with L_C only": ("ours", {"lambda_domain": 0.0, "lambda_semantic": 0.0}),
    "ours without regularisers": ("ours", {"lambda_domain": 0.0, "lambda_class": 0.0, "lambda_semantic": 0.0}),
    "ours, fixed margin": ("ours", {"margin": "fixed"}),
    "maml": ("maml", {}),
    "sign-maml": ("sign-maml", {}),
}
#: fine-tuning baselines on the supervised start: (what is adapted, steps, step size)
FINE_TUNING = {"fine-tune head": ("head", 10, 0.01), "fine-tune all": ("all", 10, 0.001)}


def source_hash() -> str:
    """sha256 of the package's Python sources and this script: provenance where the checkout has no git metadata."""
    import hashlib
    from pathlib import Path

    import sbir_core

    h = hashlib.sha256()
    for path in sorted(Path(sbir_core.__file__).parent.rglob("*.py")) + [Path(__file__)]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def evaluate(embed_fn, test: SplitTensors, size: int, device: torch.device) -> dict:
    d = meta.test_distances(embed_fn, test, size, device)
    return {**retrieval_metrics(d, test.positives), "ranks": true_match_ranks(d, test.positives).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the JSON record to write")
    parser.add_argument("--collection", help="a synthetic collection folder (default: the book profile, seed 0)")
    parser.add_argument("--level", choices=meta.LEVELS, default="category")
    parser.add_argument("--category", default="shoe", help="user level: the category whose drawers make the tasks")
    parser.add_argument("--held-out", nargs="+", help="categories, or drawer ids at user level "
                        "(default: teapot lamp guitar; drawers 8 9)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--meta-steps", type=int, default=300)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--task-shots", type=int, default=meta.MetaConfig().shots, help="k of a meta-training task")
    parser.add_argument("--queries", type=int, default=meta.MetaConfig().queries, help="q of a meta-training task")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:6], choices=list(VARIANTS))
    parser.add_argument("--adapt-steps", type=int, nargs="+", default=[],
                        help="also adapt ours with these numbers of inner steps")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    user = args.level == "user"
    args.held_out = args.held_out or (["8", "9"] if user else ["teapot", "lamp", "guitar"])
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    device = get_device(args.device)
    root = args.collection or ensure_synthetic("book", 0)
    datasets = load_collection(root)
    run = preset("book")
    size, side = run.model.input_size, run.train.data_size
    # name -> (training split, the sketches the support is drawn from, test split)
    held = meta.held_out_splits(datasets, meta.MetaConfig(level=args.level, category=args.category,
                                                          held_out=args.held_out), side)
    rows, times = [], {}

    def adapt_all(name: str, seed: int, learner: meta.MetaLearner, cfg: meta.MetaConfig, what: str | None = None,
                  steps: int | None = None) -> None:
        for category, (train, pool, test) in held.items():
            for k in args.shots:
                support = meta.draw_support(train, k, seed, pool, what=f"{category} training split")
                embed_fn = meta.adapt(learner, support, cfg, size, steps, what)
                rows.append({"variant": name, "seed": seed, "category": category, "shots": k,
                             "steps": cfg.inner_steps if steps is None else steps,
                             **evaluate(embed_fn, test, size, device)})

    for seed in args.seeds:
        common = dict(level=args.level, category=args.category, held_out=args.held_out,
                      pretrain_epochs=args.pretrain_epochs, shots=args.task_shots,
                      queries=args.queries, seed=seed, device=str(device))
        base_cfg = meta.meta_preset("ours", meta_steps=0, **common)
        t = time.perf_counter()
        base = meta.build_meta_run(datasets, base_cfg, run, progress=False)
        base.learner.eval()
        times[f"supervised start, seed {seed}"] = round(time.perf_counter() - t, 1)
        for category, (_, _, test) in held.items():  # no adaptation: the same for every k
            result = evaluate(lambda x: base.learner.net(x), test, size, device)
            rows.extend({"variant": "no adaptation", "seed": seed, "category": category, "shots": k, **result}
                        for k in args.shots)
        for name, (what, steps, lr) in FINE_TUNING.items():
            tuned = dataclasses.replace(base.meta, inner_lr=lr, margin="fixed")
            adapt_all(name, seed, base.learner, tuned, what, steps)
        pools = meta.usable_pools(meta.task_pools(datasets, base_cfg, side, base.categories), base_cfg)
        for name in args.variants:
            method, changes = VARIANTS[name]
            cfg = meta.meta_preset(method, meta_steps=args.meta_steps, **common, **changes)
            learner = copy.deepcopy(base.learner)
            t = time.perf_counter()
            history = meta.meta_train(learner, pools, cfg, size, progress=False)
            times[f"{name}, seed {seed}"] = round(time.perf_counter() - t, 1)
            adapt_all(name, seed, learner, cfg)
            if name == "ours":
                for steps in args.adapt_steps:
                    if steps != cfg.inner_steps:
                        adapt_all(name, seed, learner, cfg, steps=steps)
            if cfg.margin == "learned":  # the margins it predicts per held-out category (largest k, this seed)
                for category, (train, pool, _) in held.items():
                    support = meta.draw_support(train, max(args.shots), seed, pool)
                    margin = meta.support_margin(learner, support, size)
                    rows.append({"variant": name, "seed": seed, "category": category, "predicted_margin": margin,
                                 "last_step": history[-1]})
        upper = meta.base_run_config(run, args.pretrain_epochs, seed)
        if user:  # the upper bound: every drawer's training sketches, the held-out ones' included
            fit = cached_fit(upper, next(iter(held.values()))[0], device=device, progress=False)
        for category, (train, pool, test) in held.items():  # or the category's own training split
            if not user:
                fit = cached_fit(upper, train, device=device, progress=False)
            rows.append({"variant": "upper bound", "seed": seed, "category": category,
                         "shots": len(train) if pool is None else len(pool),
                         **evaluate(lambda x: fit.model.embed_sketch(x), test, size, device)})
    record = {
        "settings": {"level": args.level, "category": args.category if user else None, "held_out": args.held_out,
                     "adapt_steps": args.adapt_steps, "seeds": args.seeds, "shots": args.shots,
                     "meta_steps": args.meta_steps, "pretrain_epochs": args.pretrain_epochs,
                     "task_shots": args.task_shots, "queries": args.queries,
                     "variants": {n: VARIANTS[n] for n in args.variants}, "fine_tuning": FINE_TUNING,
                     "meta_defaults": dataclasses.asdict(meta.MetaConfig()),
                     "network": meta.base_run_config(run, args.pretrain_epochs).model.__dict__},
        "collection": {"root": str(root), "categories": sorted(datasets),
                       "test_sketches": {c: len(t) for c, (_, _, t) in held.items()}},
        "rows": rows, "wall_times_s": times,
        "command": "python results/run_adaptive_study.py " + " ".join(sys.argv[1:]), "commit": git_commit(),
        "source_sha256": source_hash(),
        "device": device_description(device) + f" ({platform.machine()}), torch {torch.__version__}",
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    summary: dict = {}
    for row in rows:
        if "acc@1" in row and row["variant"] != "upper bound":
            summary.setdefault((row["variant"], row["shots"], row.get("steps")), []).append(row["acc@1"])
    for (name, k, steps), values in sorted(summary.items(), key=str):
        print(f"{name:28s} k={k:2d} steps={steps}  acc@1 {sum(values) / len(values):.4f}  ({len(values)} adaptations)")
    print(f"wrote {args.out} in {record['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
