"""Quality control: cell detection and statistics (see `cytopaint.qc.cells`)."""
