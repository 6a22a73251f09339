"""Commands around the workflow: doctor."""
