"""Laterality by rule: the patient's side named before, after or inside a structure's name, the
viewer's side flipped by the radiological convention, sides shared by coordinated names, and a bare
side that names the other side of the structure just mentioned. Never by similarity."""
from __future__ import annotations

from .spans import COORD, Span


class SideRules:
    """Mixin of the resolution pass: decide each span's side."""

    # -- laterality -------------------------------------------------------------------------------
    def _viewer_near(self, positions) -> bool:
        return any(0 <= p < len(self.tokens) and self.tokens[p] in self.lang.viewer_markers for p in positions)

    def _flip(self, side: str) -> str:
        return {"left": "right", "right": "left"}.get(side, side)

    def _sides(self):
        toks = self.tokens
        live = [s for s in self.spans if not s.dropped]
        starts = {s.start for s in self.spans}
        for span in self.spans:  # dropped spans too: a side word belongs to its structure even when that is context
            if span.side:
                continue
            # before: "left kidney", "left-sided clavicle", "left and right kidneys", "both kidneys"
            k = span.start - 1
            if k >= 2 and toks[k] == "of" and toks[k - 1] in ("side", "aspect", "half"):   # "right side of the heart"
                k -= 1
            while k >= 0 and (toks[k] in ("sided", "side", "hand", "-", "(", "most") or (k in self.used and toks[k][:1] in "#@")):
                k -= 1
            if k >= 0 and self._is_side(k) and k not in self.used:
                side = self.lang.side_of[toks[k]]
                if k >= 2 and toks[k - 1] in ("and", "or", "&", "/", ",") and self._is_side(k - 2):
                    side = "both" if self.lang.side_of[toks[k - 2]] != side else side
                    self.used.add(k - 2)
                rule = "patient's side named before the structure"
                if side in ("left", "right") and self._viewer_near(range(k - 3, k)):
                    side, rule = self._flip(side), "viewer's side: radiological convention (viewer's right = patient's left)"
                span.side, span.side_rule = side, rule
                self.used.add(k)
                continue
            # after: "kidney (R)", "adrenal gland, left", "femur on the patient's left side"
            k, walked = span.end, []
            while k < len(toks) and len(walked) < 5 and (toks[k] in self.lang.side_fillers or toks[k] in self.lang.viewer_markers
                                                         or (k in self.used and toks[k][:1] in "#@")):
                walked.append(k)
                k += 1
            # "head and neck RT" is radiotherapy: a two-letter side after a name needs punctuation ("kidney, rt")
            loose = toks[k] in ("rt", "lt") if k < len(toks) else False
            if loose and not any(toks[w] in (",", "(", ":") for w in walked):
                continue
            if k < len(toks) and self._is_side(k) and k not in self.used:
                after = k + 1
                while after < len(toks) and toks[after] in ("side", "sided", "hand", ")", "-"):
                    after += 1
                if after in starts and not (toks[k - 1:k] == [","] if k else False):
                    continue  # the side opens the next structure's name ("left kidney, right adrenal")
                side = self.lang.side_of[toks[k]]
                rule = "patient's side named after the structure"
                if side in ("left", "right") and (self._viewer_near(walked) or self._viewer_near(range(k + 1, k + 4))):
                    side, rule = self._flip(side), "viewer's side: radiological convention (viewer's right = patient's left)"
                span.side, span.side_rule = side, rule
                self.used.add(k)
        # a side said once for coordinated structures: "gluteus medius and minimus on the left"
        for a, b in zip(live, live[1:]):
            between = [self.tokens[k] for k in range(a.end, b.start)]
            if between and all(t in COORD for t in between):
                if not a.side and b.side and b.side_rule and "after" in b.side_rule:
                    a.side, a.side_rule = b.side, b.side_rule
                elif a.side and not b.side and a.side_rule and "before" in a.side_rule and set(between) <= {"and", "&", "+", "plus"}:
                    a_paired = any(self.tree.with_side(e.concept_id, "left") for e in b.entries)
                    if a_paired:
                        b.side, b.side_rule = a.side, "side carried over from the structure named with it"
        # "is the right kidney smaller than the left?": a bare side names the last structure's other side
        for k, tok in enumerate(toks):
            if k in self.used or not self._is_side(k) or self.lang.side_of[tok] == "both":
                continue
            nxt = toks[k + 1] if k + 1 < len(toks) else None
            if nxt not in (None, "?", ".", "!", ";", ",", "#1", "side", "hand") or not live:
                continue
            if not any(toks[j] in ("than", "with", "vs", "versus", "to", "and", "or") for j in range(max(0, k - 3), k)):
                continue
            prev = [s for s in live if s.end <= k]
            if not prev or tok not in ("left", "right"):
                continue  # abbreviations ("RT") are too loose to stand alone
            base = prev[-1]
            if not any(self.tree.with_side(e.concept_id, "left") for e in base.entries):
                continue  # the structure named before has no sides: the word is something else
            self.spans.append(Span(k, k + 1, list(base.entries), match=base.match, score=base.score,
                                   side=self.lang.side_of[tok], side_rule="side compared with the structure named before"))
            self.used.add(k)
        for span in self.spans:
            if span.side_from is not None and not span.side:
                span.side, span.side_rule = span.side_from.side, span.side_from.side_rule
        self.spans.sort(key=lambda s: s.start)
