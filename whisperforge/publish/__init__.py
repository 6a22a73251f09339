"""Hub-ready folders, model cards and provenance."""
