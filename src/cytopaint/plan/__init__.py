"""Stage 1, planning (rule ``plan``): check a section's inputs, then cut its dilated artifact mask into
tiles with owners, outside-in waves, batches and seeds (``plan/tiles.tsv``, ``plan/plan.json``)."""
