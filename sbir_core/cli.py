"""The ``sbir`` command line: ``sbir synth``, ``sbir data info``, ``sbir train``, ``sbir eval``, ``sbir onthefly``,
``sbir meta``, ``sbir experiment``.

Each sub-command lives in a ``_add_<name>`` function that registers its parser and sets ``func``.
Bad input ends with exit status 2 and a one-line error, never a traceback.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from sbir_core.errors import ConfigError, DataError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbir", description="Fine-grained sketch-based image retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_synth, _add_data, _add_train, _add_eval, _add_onthefly, _add_meta, _add_experiment):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["sbir", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (DataError, ConfigError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"sbir: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sbir: interrupted", file=sys.stderr)
        return 130


# --- sbir experiment ------------------------------------------------------------------------------------------------
def _add_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="named experiments: every variant and seed as a job, one record")
    verbs = p.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("list", help="the experiments, their variants, claims and profiles")
    ls.set_defaults(func=_run_experiment_list)
    run = verbs.add_parser("run", help="run the jobs not done yet, then write <out>/record.json")
    run.add_argument("name", help="the experiment (sbir experiment list)")
    run.add_argument("--profile", help="the budget (sbir experiment list; default: the experiment's first, which "
                     "for the chapters' experiments is book, their live run)")
    run.add_argument("--seeds", type=int, nargs="+", help="replace the profile's seeds")
    run.add_argument("--data", help="ONE dataset folder (default: the experiment's synthetic category), a collection "
                     "for the adaptive ones (default: the book's synthetic one), or the folder an experiment on real "
                     "data names (sbir experiment list)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    run.add_argument("--out", help="output folder (default: runs/experiments/NAME-PROFILE); a rerun resumes it")
    run.add_argument("--executor", default="auto", choices=("auto", "local", "debug"),
                     help="auto: Slurm through submitit when present, else local processes; debug: in this process")
    run.add_argument("--workers", type=int, help="local jobs at once (default: one per usable core)")
    run.set_defaults(func=_run_experiment_run)
    plot = verbs.add_parser("plot", help="draw a record.json (seaborn): scores over seeds and the claims")
    plot.add_argument("record", help="an experiment's record.json")
    plot.add_argument("--to", required=True, help="the picture to write (.png)")
    plot.set_defaults(func=_run_experiment_plot)


def _run_experiment_list(args: argparse.Namespace) -> int:
    from sbir_core.experiments import EXPERIMENTS

    for exp in EXPERIMENTS.values():
        print(f"{exp.name}: {exp.about}")
        print(f"  variants: {', '.join(exp.variants)}")
        if exp.data or exp.category is None:
            print(f"  --data: {exp.data or 'a collection, one dataset per category (default: the book synthetic one)'}")
        for name, pre in exp.pretrainings.items():
            source = (f"the training splits of {', '.join(pre.datasets)}" if pre.datasets
                      else f"synthetic {pre.collection} collection")
            start = f", from {pre.start!r}" if pre.start else ""
            print(f"  pretraining {name!r}: {source}{start}, {pre.photos} photos, overrides {list(pre.overrides)}")
        for claim in exp.claims:
            print(f"  claim: {claim.text} ({claim.better} > {claim.worse}, {claim.metric})")
        for name, prof in exp.profiles.items():
            print(f"  profile {name}: seeds {list(prof.seeds)}, training photos {prof.train_photos or 'all'}, "
                  f"overrides {list(prof.overrides) or 'none'}")
    return 0


def _run_experiment_run(args: argparse.Namespace) -> int:
    from sbir_core.experiments import markdown, run_experiment

    record = run_experiment(args.name, args.profile, args.out, args.seeds, args.data, args.device, args.executor,
                            args.workers, args.command_line)
    print(markdown(record))
    return 0


def _run_experiment_plot(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from sbir_core.experiments import figure
    from sbir_core.runtime import atomic_path

    try:
        record = json.loads(Path(args.record).read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"not a JSON record ({error})", args.record) from None
    if not isinstance(record, dict) or not {"experiment", "variants", "claims", "seeds"} <= set(record):
        raise DataError("not an experiment record (sbir experiment run writes them)", args.record)
    fig = figure(record)
    with atomic_path(args.to) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    print(f"wrote {args.to}")
    return 0


# --- sbir synth ------------------------------------------------------------------------------------------------------
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write the synthetic FG-SBIR benchmark (one QMUL-V2-layout folder per category)")
    p.add_argument("out", help="output folder (created; one sub-folder per category + collection.json)")
    p.add_argument("--profile", default="book", help="book (CPU-sized, default), full (Shoe-V2 scale) or tiny")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes (default 0)")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories (default: all)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists and is not empty")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    import time

    from sbir_core.data.synthetic import generate

    start = time.perf_counter()
    out = generate(args.out, profile=args.profile, seed=args.seed, categories=args.categories, progress=True,
                   overwrite=args.force)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


# --- sbir data info --------------------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="format, split sizes and stroke statistics of ONE dataset folder "
                                            "(QMUL-V2, QMUL-V1, Sketchy, or one synthetic category)")
    info.add_argument("root", help="the dataset folder")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    info.set_defaults(func=_run_data_info)


def _data_info(root: str) -> dict:
    """The summary ``sbir data info`` prints; a folder of dataset folders is refused with their names."""
    from pathlib import Path

    from sbir_core.data import load_dataset, stroke_statistics
    from sbir_core.data.load import dataset_folders, detect_format

    try:
        detect_format(root)
    except DataError:
        inside = dataset_folders(root) if Path(root).is_dir() else []
        if inside:
            names = ", ".join(p.name for p in inside)
            raise DataError(f"a collection of {len(inside)} dataset folders ({names}); "
                            f"run 'sbir data info' on one of them") from None
        raise
    data = load_dataset(root)
    info = {"format": data.format, "name": data.name, "root": str(data.root),
            "train_sketches": len(data.train), "test_sketches": len(data.test),
            "train_photos": data.train.n_photos, "test_photos": data.test.n_photos,
            "vector": data.train.vectors is not None}
    if data.train.vectors is not None:
        info["strokes"] = stroke_statistics(data.train.vectors + data.test.vectors)
    if data.meta:
        info["drawers"] = len({s["drawer"] for s in data.meta.get("sketches", {}).values()})
    return info


def _run_data_info(args: argparse.Namespace) -> int:
    import json

    info = _data_info(args.root)
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    print(f"{info['name']} ({info['format']}) at {info['root']}")
    print(f"  sketches  train {info['train_sketches']:6d}   test {info['test_sketches']:6d}")
    print(f"  photos    train {info['train_photos']:6d}   test {info['test_photos']:6d}")
    if "strokes" in info:
        st = info["strokes"]
        share = ", ".join(f"{x:.2f}" for x in st["ink_share"][:5])
        print(f"  points/sketch  mean {st['points_mean']:.1f}  median {st['points_median']:.0f}  "
              f"min {st['points_min']}  max {st['points_max']}   spacing median {st['spacing_median']:.1f} px")
        print(f"  strokes/sketch mean {st['strokes_mean']:.1f}  median {st['strokes_median']:.0f}  "
              f"(exactly 15: {st['strokes_at_15']})   ink share of strokes 1-5: {share}")
    else:
        print("  raster sketches (no stroke data)")
    if "drawers" in info:
        print(f"  synthetic: {info['drawers']} drawers")
    return 0


# --- sbir train ------------------------------------------------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a retrieval model")
    p.add_argument("--model", default="triplet-sn", help="registered model name (default: triplet-sn)")
    p.add_argument("--data", required=True, help="ONE dataset folder (QMUL-V2 or synthetic category, QMUL-V1, ...)")
    p.add_argument("--out", required=True, help="run folder: config.json, checkpoints, log.jsonl")
    p.add_argument("--preset", default="book", help="configuration preset (book, real-cpu, triplet-sn-paper, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration field, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue a checkpoint in --out")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from sbir_core.config import override, preset, validate_config
    from sbir_core.data import load_dataset
    from sbir_core.runtime import atomic_path
    from sbir_core.train import SplitTensors, device_description, fit, git_commit, split_counts

    cfg = validate_config(override(preset(args.preset), [f"model.name={args.model}", f"seed={args.seed}",
                                                         *args.overrides]))
    device = _device(args.device)
    out = Path(args.out)
    if args.no_resume and (out / "last.pt").exists():
        print(f"sbir: error: {out / 'last.pt'} exists and --no-resume was given", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = load_dataset(args.data)
    counts = split_counts(cfg, data.train)
    result = fit(cfg, SplitTensors.from_split(data.train, cfg.train.data_size), out, device=device, resume=True)
    best = result.best
    summary = {
        "command": args.command_line,
        "model": cfg.model.name, "preset": cfg.preset, "seed": cfg.seed, "overrides": list(args.overrides),
        "dataset": {"name": data.name, "format": data.format, "root": str(args.data),
                    "counts": counts},
        "device": device_description(device), "commit": git_commit(),
        "train_wall_time_s": round(result.wall_time_s, 2), "total_wall_time_s": round(time.perf_counter() - t0, 2),
        "epochs": len(result.history), "best_epoch": best["epoch"], "best_val": best["metrics"],
    }
    with atomic_path(out / "train_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    val_text = "" if best["metrics"] is None else f", val acc@1 {best['metrics']['acc@1']:.4f}"
    print(f"trained {cfg.model.name} ({cfg.preset}) on {data.name}: {len(result.history)} epochs, "
          f"best epoch {best['epoch']}{val_text}, {summary['total_wall_time_s']:.1f} s on {summary['device']}; "
          f"run folder {out}")
    return 0


# --- sbir eval -------------------------------------------------------------------------------------------------------
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run")
    p.add_argument("run_dir", help="a run folder written by sbir train")
    p.add_argument("--data", required=True, help="the dataset folder to evaluate on")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="test (default), val (the validation photos carved from train) or train (the rest)")
    p.add_argument("--multiview", action=argparse.BooleanOptionalAction, default=None,
                   help="10-view testing (4 corners + centre, flipped); default: as the run's configuration says")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object (keys acc@1, acc@5, acc@10, ...)")
    p.add_argument("--save", metavar="PATH", help="also write a JSON record with provenance (config, commit, ...)")
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from sbir_core.data import load_dataset
    from sbir_core.runtime import atomic_path
    from sbir_core.train import (SplitTensors, device_description, evaluate, git_commit, load_run, prepare_data,
                                 split_counts)

    device = _device(args.device)
    cfg, model, loss = load_run(args.run_dir, device)
    if cfg.train.num_threads:
        import torch

        torch.set_num_threads(cfg.train.num_threads)
    data = load_dataset(args.data)
    t0 = time.perf_counter()
    if args.split == "test":
        chosen = SplitTensors.from_split(data.test, cfg.train.data_size)
    else:
        train, val = prepare_data(cfg, data.train)
        chosen = train if args.split == "train" else val
    if chosen is None:
        print("sbir: error: this run has no validation split (train.val_fraction = 0)", file=sys.stderr)
        return 2
    multiview = cfg.eval.multiview if args.multiview is None else args.multiview
    metrics = evaluate(model, loss, chosen, cfg, multiview=multiview)
    out = {**metrics, "split": args.split, "multiview": multiview, "dataset": data.name,
           "eval_wall_time_s": round(time.perf_counter() - t0, 2)}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"{data.name} {args.split} ({metrics['n_queries']} sketches, gallery {metrics['gallery_size']}, "
              f"{'10-view' if multiview else 'single view'}): acc@1 {metrics['acc@1']:.4f}  "
              f"acc@5 {metrics['acc@5']:.4f}  acc@10 {metrics['acc@10']:.4f}  mean rank {metrics['mean_rank']:.2f}")
    if args.save:
        summary_path = Path(args.run_dir) / "train_summary.json"
        record = {
            "command": args.command_line, "metrics": metrics, "split": args.split, "multiview": multiview,
            "dataset": {"name": data.name, "format": data.format, "root": str(args.data),
                        "counts": split_counts(cfg, data.train, data.test)},
            "config": cfg.to_dict(), "eval_commit": git_commit(), "eval_device": device_description(device),
            "eval_wall_time_s": out["eval_wall_time_s"],
            "training": json.loads(summary_path.read_text()) if summary_path.exists() else None,
        }
        with atomic_path(args.save) as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


# --- sbir onthefly train / eval -----------------------------------------------------------------------------------
def _add_onthefly(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("onthefly", help="on-the-fly retrieval by reinforcement learning (Bhunia et al., CVPR 2020)")
    of = p.add_subparsers(dest="onthefly_command", required=True)
    train = of.add_parser("train", help="train a policy (a new final sketch layer) on the frozen features of a run")
    train.add_argument("--base", required=True, help="a run folder written by sbir train: the frozen supervised model")
    train.add_argument("--data", required=True, help="ONE dataset folder with stroke data (QMUL-V2 or synthetic); "
                                                     "its train split gives the episodes")
    train.add_argument("--out", required=True, help="a new folder: policy.pt, config.json, history.jsonl")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a field of sbir_core.rl.RLConfig, e.g. --set algorithm=vpg (repeatable)")
    train.add_argument("--device", help="auto, cpu, cuda, ... (default: the configuration's device, auto)")
    train.set_defaults(func=_run_onthefly_train)
    ev = of.add_parser("eval", help="m@A, m@B, A@K and sketch saved of a policy and of B1 on the test split")
    ev.add_argument("run_dir", help="a folder written by sbir onthefly train")
    ev.add_argument("--data", required=True, help="the dataset folder to evaluate on (its test split)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", action="store_true", help="print one JSON object (keys RL and B1, each with m@A, ...)")
    ev.add_argument("--save", metavar="PATH", help="also write a JSON record with provenance (config, commit, ...)")
    ev.set_defaults(func=_run_onthefly_eval)


def _run_onthefly_train(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from sbir_core.data import load_dataset
    from sbir_core.rl import (POLICY, RLConfig, episodes_from_split, override_rl, save_policy_run, train_policy,
                              validate_rl_config)
    from sbir_core.train import device_description, git_commit, load_run

    device_override = [f"device={args.device}"] if args.device else []
    cfg = validate_rl_config(override_rl(RLConfig(), [*args.overrides, *device_override]))
    device = _device(cfg.device)
    out = Path(args.out)
    if (out / POLICY).exists():
        raise ConfigError("--out", f"{out} already holds a policy ({POLICY}); use a new folder")
    t0 = time.perf_counter()
    base_cfg, model, _ = load_run(args.base, device)
    data = load_dataset(args.data)
    episodes = episodes_from_split(model, base_cfg, data.train, cfg.steps, cfg.schedule, device)
    policy, history = train_policy(episodes, cfg)
    record = {"command": args.command_line, "base_run": str(Path(args.base).resolve()),
              "dataset": {"name": data.name, "format": data.format, "root": str(args.data),
                          "train_sketches": len(episodes), "train_photos": int(episodes.photos.shape[0])},
              "device": device_description(device, cfg.num_threads), "commit": git_commit(),
              "wall_time_s": round(time.perf_counter() - t0, 2)}
    save_policy_run(out, policy, cfg, history, record)
    last = history[-1]
    print(f"trained {cfg.algorithm} ({cfg.reward} reward) on {data.name}: {cfg.epochs} epochs, {len(history)} updates, "
          f"last mean reward {last['reward']:.4f}, {record['wall_time_s']:.1f} s on {record['device']}; "
          f"run folder {out}")
    return 0


def _run_onthefly_eval(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from sbir_core.data import load_dataset
    from sbir_core.metrics import onthefly_metrics
    from sbir_core.rl import CONFIG, episodes_from_split, evaluate_policy, evaluate_supervised, load_policy_run
    from sbir_core.runtime import atomic_path
    from sbir_core.train import device_description, git_commit, load_run

    device = _device(args.device)
    cfg, record, policy = load_policy_run(args.run_dir, device)
    if "base_run" not in record:
        raise DataError("names no base run (base_run)", Path(args.run_dir) / CONFIG)
    base_cfg, model, _ = load_run(record["base_run"], device)
    data = load_dataset(args.data)
    t0 = time.perf_counter()
    episodes = episodes_from_split(model, base_cfg, data.test, cfg.steps, cfg.schedule, device)
    gallery = int(episodes.photos.shape[0])
    metrics = {"RL": onthefly_metrics(evaluate_policy(policy, episodes), gallery),
               "B1": onthefly_metrics(evaluate_supervised(episodes), gallery)}
    out = {**metrics, "dataset": data.name, "split": "test", "n_queries": len(episodes), "gallery_size": gallery,
           "steps": episodes.steps, "schedule": cfg.schedule, "algorithm": cfg.algorithm, "reward": cfg.reward,
           "eval_wall_time_s": round(time.perf_counter() - t0, 2)}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"{data.name} test ({len(episodes)} sketches, gallery {gallery}, {episodes.steps} steps, "
              f"{cfg.algorithm} with the {cfg.reward} reward)")
        print(f"  {'':4s}{'m@A':>8s}{'m@B':>8s}{'A@1':>8s}{'A@5':>8s}{'A@10':>8s}{'sketch saved':>14s}")
        for name, m in metrics.items():
            print(f"  {name:4s}" + "".join(f"{m[k]:8.4f}" for k in ("m@A", "m@B", "A@1", "A@5", "A@10"))
                  + f"{m['sketch_saved']:14.4f}")
    if args.save:
        saved = {"command": args.command_line, "metrics": metrics, "evaluation": out, "training": record,
                 "base_config": base_cfg.to_dict(), "eval_commit": git_commit(),
                 "eval_device": device_description(device)}
        with atomic_path(args.save) as tmp:
            tmp.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    return 0


# --- sbir meta -------------------------------------------------------------------------------------------------------
def _add_meta(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meta", help="adaptive FG-SBIR by meta-learning (Bhunia et al., ECCV 2022)")
    meta = p.add_subparsers(dest="meta_command", required=True)
    train = meta.add_parser("train", help="the supervised start, then meta-training, on a collection of categories")
    train.add_argument("--data", required=True, action="append", help="a folder of dataset folders (e.g. the "
                       "synthetic collection of sbir synth) or one dataset folder (e.g. QMUL-Chair-V2); repeatable: "
                       "the categories of all of them")
    train.add_argument("--out", required=True, help="a new folder: meta_run.json, meta_weights.pt")
    train.add_argument("--method", default="ours", help="ours (default), anil, maml or sign-maml")
    train.add_argument("--preset", default="book", help="the network and data size (sbir_core.config presets)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a field of sbir_core.meta.MetaConfig (held_out=mug,teapot), or model.*/train.* of the "
                            "network's RunConfig (repeatable)")
    train.add_argument("--device", help="auto, cpu, cuda, ... (default: the configuration's device, auto)")
    train.set_defaults(func=_run_meta_train)
    adapt = meta.add_parser("adapt", help="acc@1/5/10 on a dataset's test split before and after adapting to K of its "
                                          "training pairs")
    adapt.add_argument("run_dir", help="a folder written by sbir meta train")
    adapt.add_argument("--data", required=True, help="ONE dataset folder (a category the run never saw)")
    adapt.add_argument("--shots", type=int, nargs="+", required=True, help="K: support pairs from the training "
                       "split (several: one result each)")
    adapt.add_argument("--steps", type=int, help="inner-loop steps (default: the run's inner_steps)")
    adapt.add_argument("--adapt", choices=("head", "all"), help="what to adapt (default: the run's; 'head' or 'all' "
                       "on a run with meta_steps=0 are the fine-tuning baselines)")
    adapt.add_argument("--lr", type=float, help="step size of the adaptation (default: the run's inner_lr)")
    adapt.add_argument("--drawer", type=int, help="adapt to this drawer's sketches (user level; synthetic data)")
    adapt.add_argument("--seeds", type=int, nargs="+", default=[0], help="each draws a support set (default 0)")
    adapt.add_argument("--device", default="auto")
    adapt.add_argument("--json", action="store_true", help="print one JSON object (before, after, ...) per line, "
                       "for each number of shots and seed")
    adapt.set_defaults(func=_run_meta_adapt)


def _run_meta_train(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from sbir_core.config import override, preset
    from sbir_core.meta import META_RUN, build_meta_run, meta_preset, override_meta, save_meta_run
    from sbir_core.train import device_description

    net_sets = [o for o in args.overrides if o.split("=", 1)[0].split(".", 1)[0] in ("model", "train")]
    meta_sets = [o for o in args.overrides if o not in net_sets]
    cfg = override_meta(meta_preset(args.method), [*meta_sets, *([f"device={args.device}"] if args.device else [])])
    run = override(preset(args.preset), net_sets)
    device = _device(cfg.device)
    out = Path(args.out)
    if (out / META_RUN).exists():
        raise ConfigError("--out", f"{out} already holds a meta-learning run ({META_RUN}); use a new folder")
    t0 = time.perf_counter()
    result = build_meta_run(_datasets(args.data), cfg, run)
    save_meta_run(out, result, args.command_line)
    last = result.history[-1] if result.history else {}
    print(f"meta-trained {args.method} ({cfg.level} level, {len(result.supervised['pools'])} task pools, held out: "
          f"{', '.join(cfg.held_out) or 'none'}): {len(result.history)} outer steps, last query loss "
          f"{last.get('query_loss', float('nan')):.4f}, {time.perf_counter() - t0:.1f} s on "
          f"{device_description(device, cfg.num_threads)}; run folder {out}")
    return 0


def _run_meta_adapt(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from sbir_core.data import load_dataset
    from sbir_core.meta import adaptation_results, load_meta_run

    if args.steps is not None and args.steps < 0:
        raise ConfigError("--steps", f"must not be negative, got {args.steps}")
    if args.lr is not None and not args.lr > 0:
        raise ConfigError("--lr", f"must be positive, got {args.lr}")
    result = load_meta_run(args.run_dir, _device(args.device))
    if args.lr is not None:
        result = dataclasses.replace(result, meta=dataclasses.replace(result.meta, inner_lr=args.lr))
    data = load_dataset(args.data)
    seen = data.name in result.categories and data.name not in result.meta.held_out
    for res in adaptation_results(result, data, args.shots, args.seeds, args.steps, args.drawer, args.adapt):
        res.update(lr=result.meta.inner_lr, seen_in_meta_training=bool(seen and result.meta.level == "category"))
        if args.json:
            print(json.dumps(res, sort_keys=True), flush=True)
            continue
        who = f"{data.name}" + (f", drawer {args.drawer}" if args.drawer is not None else "")
        note = " (a category the run was meta-trained on)" if res["seen_in_meta_training"] else ""
        print(f"{who}{note}: {res['after']['n_queries']} test sketches, gallery {res['after']['gallery_size']}; "
              f"{res['shots']} support pairs (seed {res['seed']}), {res['steps']} steps on the {res['adapted']}")
        print(f"  {'':8s}{'acc@1':>8s}{'acc@5':>8s}{'acc@10':>8s}")
        for name in ("before", "after"):
            print(f"  {name:8s}" + "".join(f"{res[name][k]:8.4f}" for k in ("acc@1", "acc@5", "acc@10")))
    return 0


def _datasets(paths: Sequence[str]) -> dict:
    """The datasets of ``paths``, each a dataset folder or a folder of them, by name; a name twice is refused."""
    from sbir_core.data import load_collection, load_dataset
    from sbir_core.data.load import detect_format

    out: dict = {}
    for path in paths:
        try:
            detect_format(path)
        except DataError:  # not one dataset: a folder of them
            found = load_collection(path)
        else:
            data = load_dataset(path)
            found = {data.name: data}
        twice = sorted(set(found) & set(out))
        if twice:
            raise DataError(f"dataset names {twice} appear twice among the --data folders", path)
        out.update(found)
    return out


def _device(name: str):
    """``get_device`` with its errors (no CUDA, a malformed name) as ConfigError for ``--device``."""
    from sbir_core.runtime import get_device

    try:
        return get_device(name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError("--device", str(err)) from None
