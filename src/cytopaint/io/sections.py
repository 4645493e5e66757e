"""The sections table (TSV): ``section``, ``image``, ``mask`` and an optional ``z`` column."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

# The first character is a letter or digit: no ".", ".." (a results path outside the stack) or "-x" (an option).
SECTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
REQUIRED = ("section", "image", "mask")


def check_section_id(section: str) -> str:
    """Return ``section`` if it is a valid id (``[A-Za-z0-9][A-Za-z0-9_.-]*``), else raise ValueError."""
    if not isinstance(section, str) or not SECTION_ID.fullmatch(section):
        raise ValueError(f"invalid section id {section!r}: ids are letters, digits, '_', '.' and '-', "
                         "starting with a letter or digit")
    return section


def resolve_ref(ref: str, base: Path) -> str:
    """Make a relative store reference (``path`` or ``path#group``) relative to ``base``; URLs stay as they are."""
    if "://" in ref:
        return ref
    store, sep, group = ref.partition("#")
    path = Path(store)
    return os.fspath(path if path.is_absolute() else base / path) + sep + group


def check_store(ref: str, what: str) -> None:
    """Raise FileNotFoundError if the local store of a reference (``path`` or ``path#group``) is missing."""
    store = ref.partition("#")[0]
    if "://" not in store and not Path(store).exists():
        raise FileNotFoundError(f"{what} store {store} does not exist")


def read_sections(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read and validate a sections table; relative store paths are resolved against ``base`` (default: cwd)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sections table {path} does not exist")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"sections table {path}: missing column(s) {missing} (need {list(REQUIRED)}, optional z)")
    if df.empty:
        raise ValueError(f"sections table {path} lists no sections")
    for section in df["section"]:
        try:
            check_section_id(section)
        except ValueError as err:
            raise ValueError(f"sections table {path}: {err}") from None
    duplicated = sorted(set(df["section"][df["section"].duplicated()]))
    if duplicated:
        raise ValueError(f"sections table {path}: duplicated section ids {duplicated}")
    if "z" in df.columns:
        bad = [z for z in df["z"] if z != "" and not z.isdigit()]
        if bad:
            raise ValueError(f"sections table {path}: z must be a plane index (non-negative integer), got {bad}")
    else:
        df["z"] = ""
    root = Path(base) if base is not None else Path.cwd()
    for col in ("image", "mask"):
        empty = df.loc[df[col] == "", "section"].tolist()
        if empty:
            raise ValueError(f"sections table {path}: empty {col} for sections {empty}")
        df[col] = [resolve_ref(ref, root) for ref in df[col]]
    return df.set_index("section", drop=False)


def plane(z: str) -> int | None:
    """The plane index of a table's ``z`` cell, or None for a 2-D section."""
    return int(z) if z != "" else None
