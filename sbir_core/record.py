"""Chapter records: the figures a chapter's training produces, checked against a JSON file committed beside it.

The book's testing contract (README, "Contributing"): text that is the same on every machine (data statistics,
shapes, toy examples, the papers' own figures) is compared exactly by ``pytest --nbval``; text that depends on a
training trajectory is not, because another CPU takes another float path and trains another model. Such cells are
tagged ``nbval-ignore-output``, and every headline figure they show goes through a :class:`Record`::

    rec = Record("02_triplet_baseline.record.json", parameters={"SEED": SEED, "EPOCHS": EPOCHS})
    rec.figure("Triplet-SN acc@1 (1 view)", m["acc@1"], tol=0.08, why="one run: a floor far above a broken model")
    rec.verdict("CFF improves on Base", v, tol=0.02)
    rec.close()

The environment variable ``SBIR_RECORD`` picks the mode:

* unset or ``off``: figures pass through untouched; nothing is read or written (Colab, interactive runs, other
  parameters);
* ``check`` (``make test``, ``make book``): each figure is compared with the record on the spot; one outside its
  tolerance, one the record lacks, or parameters other than the record's raise :class:`RecordMismatch` with one line,
  so the cell, and the notebook test, fails. ``close()`` fails if a recorded figure was never checked;
* ``write`` (``make records``): ``close()`` writes the record atomically, with its commit and the command.

A verdict's label ("reproduced", "contradicted", "not resolved") is compared exactly only when it is *stable*: when
the end of its confidence interval nearest zero lies further than ``tol`` from zero in the recorded run. Whether a
label is stable is written in the record, where a reader can see it.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from sbir_core.compare import Verdict
from sbir_core.runtime import atomic_path

VERSION = 1
MODES = ("off", "check", "write")
COMMAND = "make records"


class RecordMismatch(AssertionError):
    """A figure outside its recorded tolerance, or a record that does not fit the run (one line)."""


def record_mode() -> str:
    """``SBIR_RECORD`` as one of :data:`MODES` (unset: ``off``)."""
    mode = os.environ.get("SBIR_RECORD", "off").strip().lower() or "off"
    if mode not in MODES:
        raise ValueError(f"SBIR_RECORD={mode!r}: choose one of {', '.join(MODES)}")
    return mode


class Record:
    """The headline figures of one chapter run; see the module docstring."""

    def __init__(self, path: str | os.PathLike, parameters: dict[str, Any], mode: str | None = None) -> None:
        self.path = Path(path)
        self.mode = record_mode() if mode is None else mode
        if self.mode not in MODES:
            raise ValueError(f"record mode {self.mode!r}: choose one of {', '.join(MODES)}")
        self.parameters = json.loads(json.dumps(parameters))  # plain JSON values, as they will be stored
        self.figures: dict[str, dict[str, Any]] = {}
        self.saved: dict[str, Any] | None = None
        if self.mode == "check":
            if not self.path.is_file():
                raise RecordMismatch(f"{self.path}: no record to check against; run '{COMMAND}' to write one")
            try:
                self.saved = json.loads(self.path.read_text())
            except ValueError as err:
                raise RecordMismatch(f"{self.path}: not a JSON record ({err})") from None
            if self.saved.get("version") != VERSION:
                raise RecordMismatch(f"{self.path}: record version {self.saved.get('version')!r}, expected {VERSION}")
            if self.saved.get("parameters") != self.parameters:
                raise RecordMismatch(f"{self.path}: recorded with parameters {self.saved.get('parameters')}, "
                                     f"this run has {self.parameters}")

    def _recorded(self, name: str) -> dict[str, Any]:
        assert self.saved is not None
        if name not in self.saved["figures"]:
            raise RecordMismatch(f"{self.path}: figure {name!r} is not in the record; run '{COMMAND}'")
        return self.saved["figures"][name]

    def _add(self, name: str, entry: dict[str, Any]) -> None:
        if name in self.figures:
            raise ValueError(f"figure {name!r} recorded twice")
        self.figures[name] = entry

    def figure(self, name: str, value: float, tol: float, why: str) -> float:
        """Record ``value``; in check mode, fail unless ``|value - recorded| <= recorded tol``. Returns ``value``."""
        value = float(value)
        if not math.isfinite(value):
            raise RecordMismatch(f"{self.path}: figure {name!r} is {value}")
        if not tol > 0:
            raise ValueError(f"figure {name!r}: the tolerance must be positive, got {tol}")
        self._add(name, {"value": value, "tol": float(tol), "why": why})
        if self.mode == "check":
            saved = self._recorded(name)
            if abs(value - saved["value"]) > saved["tol"]:
                raise RecordMismatch(f"{self.path}: {name} = {value:.4f}, recorded {saved['value']:.4f} "
                                     f"± {saved['tol']:g} ({saved['why']})")
        return value

    def verdict(self, name: str, v: Verdict, tol: float) -> Verdict:
        """Record a verdict: its difference within ``tol``, and its label too where the recorded one is stable."""
        self.figure(f"{name}: difference", v.delta, tol, "the paired difference, within the seed-and-query noise")
        stable = min(abs(v.low), abs(v.high)) > tol
        self._add(f"{name}: label", {"label": v.label, "stable": stable,
                                     "interval": [round(v.low, 6), round(v.high, 6)]})
        if self.mode == "check":
            saved = self._recorded(f"{name}: label")
            if saved["stable"] and saved["label"] != v.label:
                raise RecordMismatch(f"{self.path}: {name} is {v.label!r} (interval {v.low:+.4f} to {v.high:+.4f}), "
                                     f"recorded {saved['label']!r} with interval {saved['interval']}")
        return v

    def close(self) -> None:
        """Check mode: every recorded figure was checked. Write mode: write the record atomically."""
        if self.mode == "check":
            assert self.saved is not None
            missing = sorted(set(self.saved["figures"]) - set(self.figures))
            if missing:
                raise RecordMismatch(f"{self.path}: recorded figures not produced by this run: {missing}")
        elif self.mode == "write":
            from sbir_core.train import git_commit

            body = {"version": VERSION, "made_by": f"{COMMAND} (SBIR_RECORD=write)", "commit": git_commit(),
                    "parameters": self.parameters, "figures": self.figures}
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")


__all__ = ["MODES", "Record", "RecordMismatch", "record_mode"]
