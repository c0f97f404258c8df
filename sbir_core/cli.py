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
    p = sub.add_parser("synth", help="write the synthetic FG-SBIR benchmark")
    p.set_defaults(func=_not_yet)


# --- sbir data info --------------------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets")
    p.set_defaults(func=_not_yet)


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
