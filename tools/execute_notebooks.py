"""Execute the book's notebooks in place, in table-of-contents order, with papermill.

    python tools/execute_notebooks.py            # every notebook listed in _toc.yml whose inputs changed
    python tools/execute_notebooks.py --force    # all of them
    python tools/execute_notebooks.py notebooks/01_datasets.ipynb   # just these (always executed)

A notebook is skipped when the hash of its inputs (its cells' sources and tags, its record, the `sbir_core` sources,
the synthetic data, the committed results) matches the stamp left by its last successful run in `_build/.nbstamps/`.
`SBIR_RECORD` (default `check`) says what the chapters do with their records of training-dependent figures
(`sbir_core.record`). With `SBIR_RECORD=write` (`make records`, from an empty run cache) each chapter's wall time
is kept in `notebooks/execution_times.json`, and a chapter over its budget (`budget()`) of the book's total
execution time is reported as an error.
Each notebook is executed into a temporary file with its `parameters` defaults (the fast CPU profile), volatile
metadata (papermill timings, widget state) is stripped, and only then does it replace the notebook: a failed run
leaves the stored notebook untouched.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import nbformat

ROOT = Path(__file__).resolve().parents[1]
STAMPS = ROOT / "_build" / ".nbstamps"
# Inputs that every notebook depends on, besides its own cells: the package, the synthetic collection the chapters'
# default parameters read (not the other collections that tests and experiments write beside it), the results.
SHARED_INPUTS = ("sbir_core", "data/synthetic/book-seed0", "results")
TIMES = ROOT / "notebooks" / "execution_times.json"
#: No chapter may take more than this share of the whole book's execution time (README, "Testing contract")...
BUDGET_SHARE = 0.2
#: ... except the chapters written before the budget, capped a little above their share when it was introduced.
EARLIER_SHARES = {"02_triplet_baseline": 0.35, "03_attention_and_fusion": 0.45, "04_holef": 0.25}


def budget(stem: str) -> float:
    """The largest share of the book's execution time the chapter ``stem`` may take."""
    return EARLIER_SHARES.get(stem, BUDGET_SHARE)


def toc_notebooks() -> list[Path]:
    """The notebooks named in `_toc.yml`, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc))
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def _tree_digest(path: Path, digest: "hashlib._Hash") -> None:
    if not path.exists():
        return
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(ROOT)).encode())
        digest.update(file.read_bytes())


def input_hash(notebook: Path) -> str:
    """Hash of what a notebook's outputs depend on: its cell sources and tags, the package, the data, the results.

    The notebook is read as the JSON it is (a source stored as a list of lines is joined, as nbformat joins it): a run
    that executes nothing imports neither nbformat nor papermill nor torch, and takes seconds."""
    digest = hashlib.sha256()
    for cell in json.loads(notebook.read_text())["cells"]:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        digest.update(json.dumps([cell["cell_type"], source, cell["metadata"].get("tags", [])]).encode())
    record = notebook.with_suffix(".record.json")
    digest.update(record.read_bytes() if record.exists() else b"no record")
    for shared in SHARED_INPUTS:
        _tree_digest(ROOT / shared, digest)
    return digest.hexdigest()


def clean(nb: nbformat.NotebookNode) -> None:
    """Drop the metadata that changes from run to run, so a re-execution with the same results is a no-op in git."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)


class CellError(Exception):
    """A cell of an executed notebook raised: the message names the cell and the error."""


def execute(notebook: Path) -> float:
    """Run one notebook with its default parameters; replace it only on success. Returns the wall time in seconds."""
    import nbformat
    import papermill

    tmp = notebook.with_name(f".{notebook.stem}.executing.ipynb")
    start = time.perf_counter()
    try:
        try:
            papermill.execute_notebook(
                str(notebook), str(tmp), cwd=str(notebook.parent), kernel_name="python3",
                progress_bar=False, request_save_on_cell_execute=False,
            )
        except papermill.PapermillExecutionError as err:
            raise CellError(f"cell {err.exec_count} raised {err.ename}: {err.evalue}") from None
        nb = nbformat.read(tmp, as_version=4)
        clean(nb)
        nbformat.write(nb, tmp)
        os.replace(tmp, notebook)
    finally:
        tmp.unlink(missing_ok=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute (default: all in _toc.yml)")
    parser.add_argument("--force", action="store_true", help="execute even when the inputs are unchanged")
    args = parser.parse_args(argv)

    chosen = [p.resolve() for p in args.notebooks] or toc_notebooks()
    force = args.force or bool(args.notebooks)
    STAMPS.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars belong to interactive runs, not to stored outputs
    os.environ.setdefault("SBIR_RECORD", "check")
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    writing = os.environ["SBIR_RECORD"] == "write"
    for notebook in chosen:
        if not notebook.exists():
            print(f"execute_notebooks: error: {notebook}: no such notebook", file=sys.stderr)
            return 2
        stamp = STAMPS / f"{notebook.stem}.sha256"
        digest = input_hash(notebook)
        name = notebook.relative_to(ROOT)
        if not force and stamp.exists() and stamp.read_text() == digest:
            print(f"[skip] {name} (inputs unchanged)")
            continue
        print(f"[run ] {name} ...", flush=True)
        try:
            seconds = execute(notebook)
        except CellError as err:
            print(f"execute_notebooks: error: {name}: {err}", file=sys.stderr)
            return 1
        stamp.write_text(input_hash(notebook))
        print(f"[done] {name} in {seconds:.1f} s", flush=True)
        if writing:  # `make records` runs from an empty run cache: these are the chapters' times from scratch
            from sbir_core.runtime import atomic_path  # imports torch: only when there is something to write

            times[notebook.stem] = round(seconds, 1)
            with atomic_path(TIMES) as tmp:
                tmp.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    return check_budget(times) if writing else 0


def check_budget(times: dict[str, float]) -> int:
    """Print each chapter's share of the book's execution time; 1 if one is over its ``budget``."""
    total = sum(times.values())
    over = {k: t / total for k, t in times.items() if total and t / total > budget(k)}
    print("execution time: " + ", ".join(f"{k[:2]} {t:.0f} s ({100 * t / total:.0f}%)" for k, t in
                                         sorted(times.items())) + f"; total {total:.0f} s")
    for name, share in over.items():
        print(f"execute_notebooks: error: {name} takes {100 * share:.0f}% of the book's execution time, over its "
              f"budget of {100 * budget(name):.0f}% (README, 'Testing contract')", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
