"""Datasets as streams of domain records: MovieLens-100K and -1M, users' files, and a
synthetic e-commerce shop."""

from gnn.datasets.base import Dataset, Ledger, ledger_of, load_into
from gnn.datasets.movielens import load_ml1m, load_ml100k
from gnn.datasets.synthetic import SyntheticConfig, generate

__all__ = [
    "Dataset",
    "Ledger",
    "SyntheticConfig",
    "generate",
    "ledger_of",
    "load_into",
    "load_ml1m",
    "load_ml100k",
]
