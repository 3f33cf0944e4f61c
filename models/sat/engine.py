"""The `sat` engine: SAT terms -> masks on the scan's own grid, through the reimplemented model."""
from __future__ import annotations

import time

import numpy as np

from prosector.errors import RuntimeFailure
from prosector.mask import Mask
from prosector.models.base import Engine, Readiness, SegmentOptions
from prosector.scan import Scan

from .vocabulary import SatVocabulary
from .weights import SatFiles, install_command, locate

TEXT_BATCH = 64  # labels per text-tower call


class SatEngine(Engine):
    """Text-prompted 3D segmentation (SAT-Nano or SAT-Pro) on CPU or GPU.

    `concept_terms` maps a structure id to SAT terms (the anatomy tree's `engines["sat"]`);
    explicit `model`/`text_encoder`/`tokenizer_dir` paths override PROSECTOR_HOME/sat/.
    `patch_size` exists for tests with small models; real SAT models use 288x288x96.
    """

    name = "sat"
    cost = "high"

    def __init__(self, variant: str = "nano", *, model=None, text_encoder=None, tokenizer_dir=None,
                 concept_terms=None, vocabulary: SatVocabulary | None = None, patch_size=None):
        self.files: SatFiles = locate(variant, model, text_encoder, tokenizer_dir)
        self._vocabulary = vocabulary
        self._concept_terms = concept_terms
        self._patch_size = patch_size
        self._model = None  # loaded once, kept for the next request

    # -- what it can do -------------------------------------------------------------------------
    @property
    def vocab(self) -> SatVocabulary:
        if self._vocabulary is None:
            self._vocabulary = SatVocabulary.default(self._concept_terms)
        return self._vocabulary

    def vocabulary(self, modality: str) -> set[str]:
        """SAT's own terms for this modality (concept ids reach them through `covers`)."""
        return self.vocab.for_modality(modality)

    def covers(self, structure: str, modality: str) -> bool:
        """Whether a structure id (a tree concept or a SAT term) has a SAT term on this modality."""
        return self.vocab.covers(structure, modality)

    def readiness(self) -> Readiness:
        from importlib.util import find_spec

        absent = [m for m in ("torch", "transformers") if find_spec(m) is None]  # found, not imported: stays fast
        if absent:
            return Readiness(False, f"SAT needs torch and transformers ({', '.join(absent)} not installed)", "pip install torch transformers")
        missing = self.files.missing()
        if missing:
            variant = self.files.variant if self.files.variant != "custom" else "nano"
            return Readiness(False, f"SAT weights not found: {', '.join(missing)}", install_command(variant))
        return Readiness(True)

    def device(self, requested: str = "auto") -> str:
        from .inference import choose_device

        return str(choose_device(requested))

    # -- doing it -------------------------------------------------------------------------------
    def _require_ready(self) -> None:
        ready = self.readiness()
        if not ready.ready:
            raise RuntimeFailure(ready.reason, hint=f"Install them with: {ready.fix}")

    def _segmentation_model(self):
        if self._model is None:
            from .checkpoint import load_segmentation_model

            expect = None if self.files.variant == "custom" else self.files.variant
            self._model, _ = load_segmentation_model(self.files.model, expect=expect, image_size=self._patch_size)
        return self._model

    def _encode_terms(self, terms: list[str], modality: str) -> np.ndarray:
        """Run the text tower (loaded only now, freed after) over the uncached terms."""
        import torch

        from .checkpoint import load_text_encoder

        encoder, tokenizer, _ = load_text_encoder(self.files.text_encoder, self.files.tokenizer_dir)
        out = []
        with torch.inference_mode():
            for i in range(0, len(terms), TEXT_BATCH):
                ids, mask = tokenizer(terms[i : i + TEXT_BATCH])
                out.append(encoder(ids, mask, modality).float().numpy())
        return np.concatenate(out)

    def queries(self, terms: list[str], modality: str):
        from .embedding_cache import QueryCache, cache_key, query_vectors

        key = cache_key(self.files.text_encoder, self.files.tokenizer_dir, memo_dir=self.files.cache_dir)
        cache = QueryCache(self.files.cache_dir, key)
        return query_vectors(terms, modality, cache, self._encode_terms)

    def segment(self, scan: Scan, structures: list[str], options: SegmentOptions | None = None) -> list[Mask]:
        from .config import modality_for_query
        from .pipeline import run_sat
        from .preprocess import require_volume

        options = options or SegmentOptions()
        if not structures:
            return []
        started = time.perf_counter()
        # Every name is checked before any compute: no partial output for a bad request.
        term_lists = {s: self.vocab.terms_for(s, scan.modality) for s in dict.fromkeys(structures)}
        self._require_ready()
        require_volume(scan)
        modality = modality_for_query(scan.modality)
        terms = list(dict.fromkeys(t for ts in term_lists.values() for t in ts))
        queries = self.queries(terms, modality)
        model = self._segmentation_model()
        run = run_sat(model, scan, queries, device=options.device, progress=options.progress)
        seconds = time.perf_counter() - started
        masks = []
        for structure, its_terms in term_lists.items():
            data = np.zeros(scan.data.shape[:3], dtype=bool)
            for term in its_terms:  # a concept named by several SAT terms is their union
                data |= run.masks[terms.index(term)]
            masks.append(Mask(
                name=structure, data=data, engine=self.name, label=", ".join(its_terms),
                provenance={
                    "engine": self.name, "variant": self.files.variant, "weights": str(self.files.model),
                    "text_encoder": str(self.files.text_encoder), "sat_terms": its_terms, "modality": modality,
                    "device": run.device, "seconds": round(seconds, 2), "tiles": run.tiles,
                    "patch_size": list(model.config.image_size),
                },
            ))
        return masks
