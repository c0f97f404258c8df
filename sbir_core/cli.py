"""The ``sbir`` command line: ``sbir synth``, ``sbir data info``, ``sbir train``, ``sbir eval``.

Each sub-command lives in a ``_add_<name>`` function that registers its parser and sets ``func``.
Bad input ends with exit status 2 and a one-line error, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sbir_core.errors import DataError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbir", description="Fine-grained sketch-based image retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_synth, _add_data, _add_train, _add_eval):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, FileNotFoundError, NotADirectoryError) as err:
        print(f"sbir: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sbir: interrupted", file=sys.stderr)
        return 130


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
    p.set_defaults(func=_not_yet)


# --- sbir eval -------------------------------------------------------------------------------------------------------
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run")
    p.set_defaults(func=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:  # replaced sub-command by sub-command as the issues land
    print(f"sbir {args.command}: not implemented yet", file=sys.stderr)
    return 1
