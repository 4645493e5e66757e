"""Review table: reviewers' decisions on repaired tiles, and the new seeds of rejected tiles.

The table is a TSV with columns ``section``, ``tile``, ``decision`` (``accept`` or ``reject``) and
optionally ``note`` (any further columns, e.g. ``reviewer`` or ``date``, are kept as they are).
Lines starting with ``#`` are comments. Rows are a history, oldest first: append a row for each
decision, never edit old ones. A tile's *round* is the number of times it was rejected; round k
repaints it with ``seeds.tile_seed(seed, section, row, col, round=k, part=part)``, which derives from
round k-1's seed, so the seed lineage of a tile is reproducible from the table alone. A later
``accept`` keeps the current round's result.

Only the batches holding a re-seeded tile (and the batches of later waves that take context
from them) are repainted: `batch_fingerprint` is what the repaint rule compares between runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cytopaint.io.sections import SECTION_ID

from .seeds import tile_seed
from .table import STATUS_INSUFFICIENT

DECISIONS = ("accept", "reject")
REQUIRED = ("section", "tile", "decision")
TILE_ID = re.compile(r"r(\d+)c(\d+)(p\d+)?")  # a part of a split tile ends in p1, p2, ...
HEADER = "section\ttile\tdecision\tnote"


@dataclass(frozen=True)
class Decision:
    """One row of the review table (``line``: its line number in the file)."""

    section: str
    tile: str
    decision: str
    note: str
    line: int
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "note": self.note, "line": self.line, **self.extra}


@dataclass(frozen=True)
class ReviewTable:
    """A parsed review table: its path, sha256 and rows in file order."""

    path: str
    sha256: str
    decisions: tuple[Decision, ...]

    def for_section(self, section: str) -> list[Decision]:
        return [d for d in self.decisions if d.section == section]


def read_review(path: str | os.PathLike[str]) -> ReviewTable:
    """Read and check a review table; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"review table {path} does not exist")
    raw = path.read_bytes()
    lines = [(i, line) for i, line in enumerate(raw.decode("utf-8").splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"review table {path}: no header; expected the columns {HEADER!r}")
    rows = list(csv.reader([line for _, line in lines], delimiter="\t"))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"review table {path}:{lines[0][0]}: missing column(s) {missing}; expected {HEADER!r}")
    decisions = []
    for (number, _), row in zip(lines[1:], rows[1:], strict=True):
        where = f"review table {path}:{number}"
        if len(row) > len(header):
            raise ValueError(f"{where}: {len(row)} fields for {len(header)} columns (a tab inside a note?)")
        values = dict(zip(header, (v.strip() for v in row), strict=False))
        values.update({c: "" for c in header if c not in values})
        section, tile, decision = values.pop("section"), values.pop("tile"), values.pop("decision").lower()
        if not SECTION_ID.fullmatch(section):
            raise ValueError(f"{where}: invalid section id {section!r}")
        if not TILE_ID.fullmatch(tile):
            raise ValueError(f"{where}: invalid tile id {tile!r}; tile ids look like r00012c00034 "
                             "or r00012c00034p1 (the 'tile' column of plan/tiles.tsv and qc/metrics.tsv)")
        if decision not in DECISIONS:
            raise ValueError(f"{where}: decision {decision!r} is not one of {list(DECISIONS)}")
        decisions.append(Decision(section, tile, decision, values.pop("note", ""), number, values))
    return ReviewTable(os.fspath(path), hashlib.sha256(raw).hexdigest(), tuple(decisions))


def check_sections(table: ReviewTable, sections: Iterable[str]) -> None:
    """Raise ValueError naming the rows whose section is not in ``sections``."""
    known = set(sections)
    unknown = [d for d in table.decisions if d.section not in known]
    if unknown:
        listed = ", ".join(f"line {d.line}: {d.section}" for d in unknown[:10])
        raise ValueError(f"review table {table.path}: {len(unknown)} row(s) name a section that is not in the "
                         f"sections table ({listed})")


def section_params(table: ReviewTable | None, section: str) -> str:
    """The decisions on one section as compact JSON: the plan rule reruns when they change."""
    rows = [] if table is None else [[d.tile, d.decision, d.note] for d in table.for_section(section)]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def tile_status(decisions: list[Decision]) -> str:
    """``unreviewed``, ``accepted`` or ``regenerated`` (rejected, repainted, awaiting review)."""
    if not decisions:
        return "unreviewed"
    return "accepted" if decisions[-1].decision == "accept" else "regenerated"


def apply_review(plan: pd.DataFrame, table: ReviewTable | None, section: str,
                 global_seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Re-seed the rejected tiles of ``section``'s plan; return the plan and the review record.

    The record (``plan.json``'s ``review``) holds the table's path and sha256 and, per reviewed
    tile, its status, round, decisions and seed lineage (round 0 first). Raises ValueError for a
    decision on a tile that is not in the plan or was not repainted.
    """
    if table is None:
        return plan, {"table": None, "sha256": None, "tiles": {}}
    record: dict[str, Any] = {"table": table.path, "sha256": table.sha256, "tiles": {}}
    by_tile: dict[str, list[Decision]] = {}
    for d in table.for_section(section):
        by_tile.setdefault(d.tile, []).append(d)
    if not by_tile:
        return plan, record
    plan = plan.copy()
    index = {t: i for i, t in enumerate(plan["tile"])}
    for tile, rows in by_tile.items():
        where = f"review table {table.path}:{rows[0].line}"
        if tile not in index:
            sample = ", ".join(plan["tile"].head(8))
            raise ValueError(f"{where}: section {section} has no tile {tile} in its plan ({len(plan)} tiles: "
                             f"{sample}{', ...' if len(plan) > 8 else ''}); see plan/tiles.tsv")
        i = index[tile]
        if plan["status"].iat[i] == STATUS_INSUFFICIENT:
            raise ValueError(f"{where}: tile {tile} of section {section} was not repainted (insufficient context), "
                             "so there is nothing to review")
        row, col, part = (int(plan[name].iat[i]) for name in ("row", "col", "part"))
        rounds = sum(d.decision == "reject" for d in rows)
        seeds = [tile_seed(global_seed, section, row, col, round=k, part=part) for k in range(rounds + 1)]
        if seeds[0] != int(plan["seed"].iat[i]):
            raise ValueError(f"tile {tile} of section {section}: plan seed {plan['seed'].iat[i]} is not the round-0 "
                             f"seed of tiling.seed {global_seed}")
        plan.iloc[i, plan.columns.get_loc("seed")] = seeds[-1]
        record["tiles"][tile] = {"status": tile_status(rows), "round": rounds, "seeds": seeds,
                                 "decisions": [d.as_dict() for d in rows]}
    return plan, record


def batch_fingerprints(plan: pd.DataFrame, settings: Mapping[str, Any]) -> dict[int, str]:
    """What each batch's pixels depend on in its section's plan, as a short string per batch.

    The plan without its seeds and the plan settings (``plan.json`` without ``review`` and the
    global seed) enter as one digest, so any change of geometry repaints the whole section; the
    seeds of a batch's own tiles enter as they are, so re-seeding a tile repaints only its batch
    (and, through their inputs, the batches of later waves that see its pixels).
    """
    h = hashlib.sha256()
    for name in plan.columns.drop("seed"):
        values = plan[name].to_numpy()
        h.update(name.encode() + b"\x00")
        h.update("\x00".join(values).encode() if values.dtype == object else values.tobytes())
    kept = {k: v for k, v in settings.items() if k != "review"}
    kept["tiling"] = {k: v for k, v in dict(kept.get("tiling", {})).items() if k != "seed"}
    h.update(json.dumps(kept, sort_keys=True).encode())
    digest = h.hexdigest()[:16]
    seeds: dict[int, list[str]] = {}
    for tile, batch, seed in zip(plan["tile"], plan["batch"].tolist(), plan["seed"].tolist(), strict=True):
        if batch >= 0:
            seeds.setdefault(batch, []).append(f"{tile}={seed}")
    return {b: f"{digest}:{','.join(v)}" for b, v in seeds.items()}
