"""Text embeddings of SAT terms, cached on disk and keyed by the text checkpoint's hash.

The text tower (110 M parameters) then runs once per term and modality, ever; a different
checkpoint or tokenizer vocabulary gets a different cache file, so stale vectors cannot leak.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import file_sha256


def cache_key(text_encoder: str | Path, tokenizer_dir: str | Path, memo_dir: str | Path | None = None) -> str:
    vocab = Path(tokenizer_dir) / "vocab.txt"
    vocab_hash = hashlib.sha256(vocab.read_bytes()).hexdigest() if vocab.is_file() else "none"
    return f"{file_sha256(text_encoder, memo_dir)[:16]}-{vocab_hash[:8]}"


class QueryCache:
    """{(modality, term): vector} in one .npz per (checkpoint, vocabulary)."""

    def __init__(self, directory: str | Path, key: str):
        self.path = Path(directory) / f"sat-text-{key}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path) as stored:
                    self._vectors = {k: stored[k] for k in stored.files}
            except (OSError, ValueError):  # a damaged cache is rebuilt, not trusted
                self._vectors = {}

    @staticmethod
    def _name(modality: str, term: str) -> str:
        return f"{modality}|{term}"

    def missing(self, terms: list[str], modality: str) -> list[str]:
        return [t for t in dict.fromkeys(terms) if self._name(modality, t) not in self._vectors]

    def add(self, terms: list[str], modality: str, vectors: np.ndarray) -> None:
        for term, vec in zip(terms, vectors):
            self._vectors[self._name(modality, term)] = np.asarray(vec, dtype=np.float32)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.stem}.tmp{os.getpid()}.npz")
            np.savez(tmp, **self._vectors)
            tmp.replace(self.path)
        except OSError:  # read-only home: still correct, just recomputed next run
            pass

    def get(self, terms: list[str], modality: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([self._vectors[self._name(modality, t)] for t in terms]))


def query_vectors(
    terms: list[str],
    modality: str,
    cache: QueryCache,
    encode: Callable[[list[str], str], np.ndarray],
) -> torch.Tensor:
    """(N, d) queries for `terms`; only the terms not yet cached go through `encode`."""
    todo = cache.missing(terms, modality)
    if todo:
        cache.add(todo, modality, encode(todo, modality))
    return cache.get(terms, modality)
