"""Scores: CER and its normalization, per-set scoring, forgetting against base."""
