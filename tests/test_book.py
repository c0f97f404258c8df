"""The book's frame: every notebook follows the structure of DEVELOPERS.md and agrees with `_config.yml`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"].get("branch", "main")


def toc_files() -> list[str]:
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            files.extend([node["file"]] if "file" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files.append(toc["root"])
    walk(toc["parts"])
    return files


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_toc_lists_every_notebook_and_every_entry_exists() -> None:
    listed = toc_files()
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), f"_toc.yml names missing {entry}"
    missing = [nb.name for nb in NOTEBOOKS if f"notebooks/{nb.stem}" not in listed]
    assert not missing, f"notebooks not in _toc.yml: {missing}"
    numbered = [f for f in listed if f.startswith("notebooks/")]
    assert numbered == sorted(numbered), "notebooks must appear in _toc.yml in numeric order"


def expected_setup_source() -> str:
    """The Colab setup cell, as 00_introduction has it: every notebook carries the same one."""
    return nbformat.read(ROOT / "notebooks" / "00_introduction.ipynb", as_version=4).cells[1].source


def test_setup_cell_installs_from_the_configured_repository() -> None:
    source = expected_setup_source()
    assert f"git+{REPO_URL}@{BRANCH}" in source
    assert '"google.colab" in sys.modules' in source
    code_lines = [line for line in source.splitlines() if not line.lstrip().startswith("#")]
    assert not re.search(r"\b(torch|numpy|torchvision)\b", "\n".join(code_lines)), "never reinstall torch or numpy"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_structure(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    title = cells[0]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {path.name[:2]} · "), "title first"
    colab = REPO_URL.replace("https://github.com", "https://colab.research.google.com/github")
    assert f"({colab}/blob/{BRANCH}/notebooks/{path.name})" in title.source, "Colab badge must point at this notebook"
    assert cells[1].source == expected_setup_source(), "the Colab setup cell must be the one of 00_introduction"
    code = [c for c in cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    assert "parameters" in tags[1], "the second code cell is the papermill `parameters` cell"
    assert "seed_everything(SEED)" in code[2].source, "the third code cell seeds everything from SEED"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_stored_clean_and_in_order(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert None not in counts, f"{path.name} has unexecuted cells: run tools/execute_notebooks.py"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name} was not executed top to bottom in one run"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name} stores an error output"
            assert "image/svg+xml" not in out.get("data", {}), "figures must be PNG (SVG breaks nbval)"
    assert "papermill" not in nb.metadata, "volatile papermill metadata must be stripped"


# --- the testing contract (README, "Testing contract") ----------------------------------------------------------------
SANITIZER = ROOT / "tools" / "nbval_sanitize.cfg"
TRAINS = ("cached_fit(", "cached_fit_many(", "fit(", "train_policies(", "train_policy(", "train_baseline(",
          "build_meta_run(", "meta_train(")
RECORDED = ("record.figure(", "record.verdict(")


def test_the_sanitiser_keeps_numbers() -> None:
    """Only addresses and figure sizes are volatile: an accuracy must reach nbval's comparison as printed."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(SANITIZER)
    text = "acc@1 25.7 %, mean rank 5.52, 319 queries, <Figure size 640x480 with 2 Axes> at 0x7f3a2b"
    for section in cfg.sections():
        text = re.sub(cfg.get(section, "regex"), cfg.get(section, "replace"), text)
    assert text == "acc@1 25.7 %, mean rank 5.52, 319 queries, <Figure> at 0xADDRESS"


def parameter_defaults(nb: nbformat.NotebookNode) -> dict:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)  # noqa: S102 - the notebook's own parameters cell: plain assignments
    return values


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_training_output_is_recorded_not_compared(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    trains = any(t in c.source for c in code for t in TRAINS)
    for cell in code:
        if any(t in cell.source for t in TRAINS + RECORDED):
            assert "nbval-ignore-output" in cell.metadata.get("tags", []), (
                f"{path.name}: a cell that trains or records a figure must be tagged nbval-ignore-output:\n"
                f"{cell.source[:200]}")
    record_path = path.with_suffix(".record.json")
    if not trains:
        assert not record_path.exists(), f"{record_path.name}: a record beside a notebook that trains nothing"
        return
    assert record_path.exists(), f"{path.name} trains models but has no {record_path.name} (make records)"
    assert code[-1].source.startswith("record.close()"), f"{path.name}: the last code cell must be record.close()"
    record = json.loads(record_path.read_text())
    assert record["version"] == 1 and record["made_by"].startswith("make records")
    assert record["commit"] and not record["commit"].endswith("+dirty"), "records come from a clean commit"
    defaults = parameter_defaults(nb)
    assert record["parameters"] == {k: defaults[k] for k in record["parameters"]}, \
        f"{record_path.name} was made with other parameters than the notebook's defaults"
    figures = [f for f in record["figures"].values() if "value" in f]
    assert figures, f"{record_path.name} records no figure"
    for name, fig in record["figures"].items():
        assert ("value" in fig and fig["tol"] > 0 and fig["why"]) or {"label", "stable"} <= set(fig), name


def test_every_chapter_is_within_its_share_of_the_execution_budget() -> None:
    """No chapter over its budget share of the book's execution time, as last measured by tools/execute_notebooks.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "tools" / "execute_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    times = json.loads(tool.TIMES.read_text())
    assert set(times) == {p.stem for p in NOTEBOOKS}, "execution_times.json must time every chapter"
    total = sum(times.values())
    for name, seconds in times.items():
        assert seconds / total <= tool.budget(name), f"{name} takes {100 * seconds / total:.0f}% of the book"
