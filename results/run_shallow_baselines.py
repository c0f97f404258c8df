"""Shallow baselines (pixel NN, dense HOG with L1 and with a ranking SVM) on one dataset folder, as a results record.

    python results/run_shallow_baselines.py ../shared/data/qmul-v1/shoes results/shallow_baselines_shoes_v1.json

Trains the ranking SVM on the training split (its regulariser weight chosen on held-out training photos) and
evaluates every method on the official test split. The record
holds the metrics and their provenance (dataset counts, commit, device, wall time); never any data.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from sbir_core import baselines
from sbir_core.data import load_dataset
from sbir_core.metrics import retrieval_metrics
from sbir_core.runtime import atomic_path
from sbir_core.train import git_commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="one dataset folder")
    parser.add_argument("out", help="the JSON record to write")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = load_dataset(args.data)
    svm = baselines.RankSVM()
    methods = {"pixel NN": baselines.pixel_nn_distances(data.test)}
    methods["dense HOG (L1)"], methods["dense HOG + rankSVM"] = baselines.hog_ranksvm_distances(data.train, data.test,
                                                                                                svm=svm)
    record = {
        "methods": {name: retrieval_metrics(d, data.test.positives) for name, d in methods.items()},
        "settings": {"render_size": 128, "pixel_size": 32, "hog": {"size": 80, "cell": 16, "orientations": 9},
                     "ranksvm": {"lam": svm.lam, "negatives": svm.negatives, "iterations": svm.iterations,
                                 "seed": svm.seed}},
        "dataset": {"name": data.name, "format": data.format, "root": args.data,
                    "counts": {s: {"sketches": len(getattr(data, s)), "photos": len(getattr(data, s).photo_names)}
                               for s in ("train", "test")}},
        "command": "python results/run_shallow_baselines.py " + " ".join(sys.argv[1:]), "commit": git_commit(), "device": f"cpu: {torch.get_num_threads()} threads ({platform.machine()})",
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    for name, m in record["methods"].items():
        print(f"{data.name} {name}: acc@1 {m['acc@1']:.4f}  acc@10 {m['acc@10']:.4f}")


if __name__ == "__main__":
    main()
