"""Stage 3, blend (rule ``blend``): compose the owned pixels of all batch results into
``repaired.ome.zarr`` (level 0, pyramid, ``labels/repaired``) and write the receipt ``blend.json``."""
