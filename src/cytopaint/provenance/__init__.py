"""Stage 4, provenance (rule ``manifest``): the schema-validated ``manifest.json`` of a repaired section."""
