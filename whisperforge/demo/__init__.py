"""The offline demo's synthetic data and lectures."""
