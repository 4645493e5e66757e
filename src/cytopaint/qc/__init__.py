"""Stage 4, quality control (rules ``qc`` and ``qc_summary``): per tile, cell statistics, grey levels
and a seam score of the repaired pixels against a ring of intact tissue (`measure`, `metrics`,
`cells`), flags from thresholds, and the section report and stack index pages (`render`, `report`,
`summary`, HTML/CSS/JS under ``templates/``); `stage.qc_section` is the rule's entry point."""
