"""What every stage and the Snakefile share: errors, files, the config and the resolved base model,
options, audio reading, manifests, code digests, instance locks."""
