"""Data in: AISHELL's archive, manifests and datasets, own recordings with subtitle files (timing,
the fit check), corpora and mixes."""
