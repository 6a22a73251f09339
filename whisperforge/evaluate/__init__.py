"""Evaluation beyond CER: long-form recordings, speed, plots."""
