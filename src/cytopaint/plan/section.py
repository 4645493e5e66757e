"""A section as the pipeline passes it between stages: id, image and mask stores, plane, plan margin.

`Section.from_table` reads an entry of the sections table; planning fixes the dilation margin of
the artifact mask (``plan.json``'s ``margin_px``), and `Section.planned` carries it to the later
stages. A section reads its image window by window and gives its dilated mask D
(`cytopaint.plan.ownership.DilatedMask`); `Section.in_memory` holds level 0 and the mask in memory
for small sections read many times (the evaluation's patches).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cytopaint.geometry import Box
from cytopaint.io import masks, volume
from cytopaint.io.sections import check_section_id, plane, read_sections

from .coarse import MaskArray
from .ownership import DilatedMask


@dataclass(frozen=True)
class Section:
    """One section: ``id``, its ``image`` and ``mask`` store references, plane ``z`` of a stack (or None),
    and the level-0 dilation radius of its mask once planned (``margin_px``)."""

    id: str
    image: str
    mask: str
    z: int | None = None
    margin_px: int | None = None
    _pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    _mask: tuple[np.ndarray, tuple[int, int]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_section_id(self.id)

    @classmethod
    def from_table(cls, table: str | os.PathLike[str], section: str) -> Section:
        """The entry ``section`` of a sections table (relative stores resolved against the table's folder)."""
        check_section_id(section)
        rows = read_sections(table, base=Path(table).resolve().parent)
        if section not in rows.index:
            raise ValueError(f"section {section!r} is not in {table}")
        row = rows.loc[section]
        return cls(section, row["image"], row["mask"], plane(row["z"]))

    @classmethod
    def from_plan(cls, plan_info: Mapping[str, Any]) -> Section:
        """The section a plan (``plan.json``) was made for, with its margin."""
        return cls(plan_info["section"], plan_info["image"], plan_info["mask"], plan_info["z"],
                   int(plan_info["margin_px"]))

    def planned(self, plan_info: Mapping[str, Any]) -> Section:
        """This section with the margin of its plan (``plan.json``); refuses another section's plan."""
        if plan_info["section"] != self.id:
            raise ValueError(f"the plan given is of section {plan_info['section']}, not {self.id}")
        return replace(self, margin_px=int(plan_info["margin_px"]))

    @cached_property
    def info(self) -> volume.ImageInfo:
        """Metadata of the image."""
        return volume.read_info(self.image)

    @property
    def plane_shape(self) -> tuple[int, int]:
        return self.info.plane_shape

    def artifact_mask(self, level: int | None = None) -> tuple[MaskArray, tuple[int, int]]:
        """The artifact mask at ``level`` (default: its finest) and its factor to image level 0."""
        if self._mask is not None and not level:
            return self._mask
        return masks.load_mask(self.mask, self.info, z=self.z, level=level)

    def dilated_mask(self) -> DilatedMask:
        """D of the plan: the finest mask level dilated by ``margin_px``."""
        if self.margin_px is None:
            raise ValueError(f"section {self.id} is not planned: its mask margin is not known")
        mask, factor = self.artifact_mask()
        return DilatedMask(mask, factor, self.plane_shape, self.margin_px)

    def read(self, box: Box) -> np.ndarray:
        """Level-0 image pixels on ``box`` (a new array)."""
        if self._pixels is not None:
            return self._pixels[box.slices()].copy()
        return volume.read_region(self.image, *box.size, z=self.z)

    def in_memory(self) -> Section:
        """This section with level 0 and the finest mask level read into memory."""
        mask, factor = self.artifact_mask()
        return replace(self, _pixels=np.asarray(volume.open_level(self.image, 0, self.z)),
                       _mask=(np.asarray(mask), factor))
