"""Stage 2, repaint (rule ``repaint``, one GPU job per batch): read each tile's context, sample it
(RePaint or another sampler) and write the batch result file."""
