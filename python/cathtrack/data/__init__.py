"""Datasets, loaders and the synthetic fluoroscopy engine."""
