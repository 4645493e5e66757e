"""Copying untouched blocks from the input to the output: as stored bytes where both encode alike."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from cytopaint.geometry import Box
from cytopaint.io.volume import read_array

from .blocks import block_slices

_RAW_BATCH = 256  # encoded blocks copied concurrently


def same_encoding(src: zarr.Array, dst: zarr.Array) -> bool:
    """Whether a stored block of ``src`` (one plane deep) is a valid stored block of ``dst``."""
    s, d = src.metadata.to_dict(), dst.metadata.to_dict()
    if s["zarr_format"] != d["zarr_format"]:
        return False
    src_block, dst_block = src.metadata.chunks, dst.metadata.chunks
    lead = len(src_block) - len(dst_block)
    if lead < 0 or any(c != 1 for c in src_block[:lead]) or tuple(src_block[lead:]) != tuple(dst_block):
        return False
    keys = ("data_type", "fill_value", "codecs") if s["zarr_format"] == 3 else (
        "dtype", "fill_value", "compressor", "filters", "order")
    return all(s[k] == d[k] for k in keys)


class Copier:
    """Copies blocks of one level from the input (plane ``lead`` of a stack) to the output."""

    def __init__(self, src: zarr.Array, lead: tuple[int, ...], dst: zarr.Array) -> None:
        self.src, self.lead, self.dst = src, lead, dst
        self.raw = same_encoding(src, dst)
        self.block = tuple(dst.metadata.chunks)
        self.shape = tuple(dst.shape)

    def read(self, win: Box) -> np.ndarray:
        """The input's pixels on ``win``."""
        return read_array(self.src, (*self.lead, *win.slices()), str(self.src.store_path))

    def copy(self, blocks: Sequence[tuple[int, int]]) -> None:
        """Copy whole blocks (grid coordinates)."""
        if self.raw:
            for k in range(0, len(blocks), _RAW_BATCH):
                sync(self._copy_raw(blocks[k : k + _RAW_BATCH]))
            return
        for ij in blocks:
            ys, xs = block_slices(ij, self.block, self.shape)
            self.dst[ys, xs] = read_array(self.src, (*self.lead, ys, xs), str(self.src.store_path))

    async def _copy_raw(self, blocks: Sequence[tuple[int, int]]) -> None:
        src, dst = self.src.store_path, self.dst.store_path
        proto = default_buffer_prototype()

        async def one(ij: tuple[int, int]) -> None:
            key = self.src.metadata.encode_chunk_key((*self.lead, *ij))
            buf = await src.store.get(f"{src.path}/{key}", prototype=proto)
            if buf is not None:  # a missing block reads as the fill value, as it will in dst
                await dst.store.set(f"{dst.path}/{self.dst.metadata.encode_chunk_key(ij)}", buf)

        await asyncio.gather(*(one(ij) for ij in blocks))
