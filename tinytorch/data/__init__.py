"""Datasets and mini-batch loading (Module 08): `TensorDataset`, `DataLoader`.

The course's dataset itself lives in `tinytorch.datasets` (`load_digits`).
"""
from tinytorch.data.loader import DataLoader, TensorDataset, to_batch

__all__ = ["DataLoader", "TensorDataset", "to_batch"]
