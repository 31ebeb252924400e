"""Training, datasets and evaluation for S2ML; run from the repository root, not installed."""
