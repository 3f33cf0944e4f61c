"""SAT's text tower: BioLORD-2023-C (MPNet) -> masked mean pooling -> projection + modality embedding.

Tokenisation copies SAT's rule, which is not MPNet's own: ids are [CLS] + wordpieces + [SEP]
with the literal BERT tokens, rows are right-padded with id 0, the attention mask is ids > 0,
and an over-long row is cut to 256 ids with its last id replaced by [SEP]. Labels are
lower-cased first, as SAT's inference does.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from prosector.errors import InputError

from .config import MODALITY_CODES, modality_for_query  # noqa: F401 (re-exported)

TOKENIZER_FILES = ("vocab.txt", "config.json")


class SatTokenizer:
    """Word-piece tokenisation from a local BioLORD directory, with SAT's id conventions."""

    def __init__(self, directory: str | Path, max_tokens: int = 256):
        self.directory = Path(directory)
        missing = [f for f in TOKENIZER_FILES if not (self.directory / f).is_file()]
        if missing:
            raise InputError(
                f"not a BioLORD tokenizer directory (missing {', '.join(missing)}).",
                path=self.directory,
                hint="Point it at a local copy of FremyCompany/BioLORD-2023-C (`prosector weights install sat-nano` fetches one).",
            )
        from transformers import MPNetTokenizer  # local import: keep torch-free callers light

        try:
            self._tok = MPNetTokenizer.from_pretrained(str(self.directory), local_files_only=True)
        except Exception as err:  # a corrupt vocab is bad input, not a crash
            raise InputError(f"cannot read the tokenizer vocabulary: {err}", path=self.directory / "vocab.txt") from err
        vocab = self._tok.get_vocab()
        if "[CLS]" not in vocab or "[SEP]" not in vocab:
            raise InputError("vocabulary lacks the [CLS]/[SEP] tokens SAT uses: not a BioLORD/MPNet vocab", path=self.directory)
        self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
        self.vocab_size = len(self._tok)
        self.max_tokens = max_tokens

    def model_config(self) -> dict:
        return json.loads((self.directory / "config.json").read_text())

    def __call__(self, labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = []
        for label in labels:
            ids = [self.cls_id] + self._tok.convert_tokens_to_ids(self._tok.tokenize(label.lower())) + [self.sep_id]
            if len(ids) > self.max_tokens:
                ids = ids[: self.max_tokens]
                ids[-1] = self.sep_id
            rows.append(ids)
        width = max(len(r) for r in rows)
        # Padding id 0 (MPNet's <s>), as SAT does; the mask below hides it.
        input_ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)
        return input_ids, (input_ids > 0).long()


class _TextTower(nn.Module):
    """Holds the MPNet encoder under the name the official files use (`text_tower.biolord`)."""

    def __init__(self, mpnet_config):
        super().__init__()
        from transformers import MPNetModel

        self.biolord = MPNetModel(mpnet_config, add_pooling_layer=True)


class SatTextEncoder(nn.Module):
    """Labels + modality -> query vectors (N, query_dim), the segmentation model's input."""

    def __init__(self, mpnet_config, query_dim: int = 768, n_modalities: int = 4):
        super().__init__()
        hidden = mpnet_config.hidden_size
        self.text_tower = _TextTower(mpnet_config)
        self.projection_layer = nn.Sequential(nn.Linear(hidden, query_dim), nn.GELU(), nn.Linear(query_dim, query_dim))
        self.modality_embed = nn.Embedding(n_modalities, query_dim)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Attention-masked mean of the last hidden state (SAT never uses MPNet's pooler)."""
        hidden = self.text_tower.biolord(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, modality: str) -> torch.Tensor:
        code = MODALITY_CODES.get(modality)
        if code is None or code >= self.modality_embed.num_embeddings:
            known = [m for m, c in MODALITY_CODES.items() if c < self.modality_embed.num_embeddings]
            raise InputError(f"SAT has no modality '{modality}' (it knows {', '.join(known)})")
        projected = self.projection_layer(self.pooled(input_ids, attention_mask))
        return projected + self.modality_embed.weight[code]
