"""Stage 2, repaint (rule ``repaint``, one GPU job per batch): read each tile's context, sample it with
RePaint and write the batch result file."""
