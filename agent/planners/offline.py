"""The offline planner: intent by rules, anatomy by the knowledge tree, numbers by prosector.measure.

Deterministic and fast (no model, no torch when masks are cached). What it cannot do it says plainly.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Callable

from prosector.errors import InputError

from ..intents import classify, foreign_language, region_of
from ..questions import QUESTION_INTENTS, answer_concepts, resolve_structures
from ..templates import prompt_text
from ..types import Reply

EXPORT_FORMATS = {"nifti": "nifti", "nii": "nifti", "multilabel": "multilabel", "dicom": "dicom-seg",
                  "seg": "dicom-seg", "statistics": "statistics", "stats": "statistics", "json": "statistics"}


class OfflinePlanner:
    name = "offline"

    def __init__(self, agent):
        self.agent = agent
        self.session = agent.session

    def ask(self, text: str, progress=None, step: Callable[[str], None] = lambda s: None) -> Reply:
        intent = classify(text)
        if intent is None:
            lang = foreign_language(text)
            if lang:
                raise InputError(f"This request looks {lang.capitalize()}; I only read requests in English.")
            intent = "segment"  # bare anatomy words: show them
        step(f"intent: {intent}")
        if intent == "help":
            return Reply(prompt_text("help.md"), intent=intent)
        if intent == "list":
            return self._list()
        if intent == "report":
            region = region_of(text)
            step(f"report: {region or 'whole scan'}")
            report = self.agent.report(region)
            return Reply(report.markdown, mask_ids=list(report.mask_ids), warnings=list(report.warnings),
                         evidence=[{"sentence": s["text"], "structures": s["structures"], "numbers": s["numbers"]}
                                   for s in report.sentences], report=report, intent=intent)
        if intent == "export":
            return self._export(text, step)
        assert intent in QUESTION_INTENTS
        concepts, steps = resolve_structures(self.session, text)
        for s in steps:
            step(s)
        result, steps = answer_concepts(self.session, intent, concepts, progress=progress)
        for s in steps:
            step(s)
        return Reply(result.text, mask_ids=result.mask_ids, measurements=result.measurements,
                     evidence=[{k: s[k] for k in ("sentence", "structures", "numbers")} for s in result.sentences],
                     warnings=result.warnings, intent=intent)

    def _list(self) -> Reply:
        summary = self.session.summary()
        if not summary["scan"]:
            return Reply("No scan is loaded.", intent="list")
        masks = summary["masks"]
        text = (f"Loaded {Path(summary['scan']['path']).name}"
                + (f" with the segmentation {Path(summary['scan']['seg']).name}" if summary["scan"]["seg"] else "")
                + (f"; {len(masks)} masks so far: {', '.join(masks)}." if masks else "; no masks yet."))
        return Reply(text, mask_ids=list(masks), intent="list")

    def _export(self, text: str, step) -> Reply:
        words = text.lower().replace(",", " ").split()
        formats = list(dict.fromkeys(EXPORT_FORMATS[w] for w in words if w in EXPORT_FORMATS)) or ["nifti"]
        structures = None
        try:
            concepts, steps = resolve_structures(self.session, text)
            structures = concepts
        except InputError:
            pass  # no anatomy named: export every mask of the session
        out_dir = self.session.root / "exports" / (time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4])
        files = self.session.export(structures, formats, out_dir)
        step(f"export: {', '.join(formats)} -> {out_dir}")
        return Reply(f"Wrote {', '.join(f.name for f in files)} to {out_dir}.", intent="export")
