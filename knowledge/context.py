"""Words that name anatomy but are context, not requests: lesions in organs, parts without a class,
procedures, locations, variants, vertebral levels used as landmarks, negation."""
from __future__ import annotations

from .lexicon import Entry
from .resolution import Unresolved
from .spans import Span
from .text import tokenize


class ContextRules:
    """Mixin of the resolution pass: drop or rewrite spans that are context."""

    # -- context rules ----------------------------------------------------------------------------
    def _lesions(self):
        toks = self.tokens
        lesion_words = self.lang.lesion_words
        for span in self.spans:
            if span.dropped:
                continue
            word, additive, located = None, False, False
            if span.end < len(toks) and toks[span.end] in lesion_words:       # "thyroid nodule"
                word = toks[span.end]
                self.used.add(span.end)
            else:                                                             # "cyst in the right kidney"
                k = span.start - 1
                while k >= 0 and self._is_side(k):
                    k -= 1
                if k >= 1 and toks[k] in self.lang.locative_prepositions and toks[k - 1] in lesion_words and (k - 1) not in self.used:
                    word, located = toks[k - 1], True
                    self.used.update({k - 1, k})
            if word is None:                                                  # "left kidney including any cysts"
                k = span.end
                while k < len(toks) and toks[k] in ("including", "include", "with", "plus", "and", "any", "its", "all", "possible"):
                    k += 1
                if k > span.end and k < len(toks) and toks[k] in lesion_words and k not in self.used:
                    word, additive = toks[k], True
                    self.used.add(k)
            if word is None:
                continue
            lesion = self._lesion_concept(span, word)
            if lesion and located and not self.tree.covered(lesion.concept_id, self.scope, self.modality):
                # "the mass in the liver" with no engine for the mass: the organ would be a silent stand-in
                self.unresolved.append(Unresolved(f"{word} in {self._span_text(span)}",
                                                  "a lesion is not its organ, and no engine in scope segments it",
                                                  lesion.concept_id))
                span.dropped = "lesion"
                self._pending_suggestions.append((span.entries[0].concept_id, span))
                continue
            if additive:
                if lesion:
                    self.spans.append(Span(span.end, span.end + 1, [lesion], match="rule", side_from=span))
                else:
                    self.unresolved.append(Unresolved(word, "a finding, not a structure; no engine segments it", None))
                continue
            if lesion and located:  # "a cyst in the right kidney": both are named and both can be segmented
                self.spans.append(Span(span.start, span.start, [lesion], match="rule", side_from=span))
            elif lesion:
                span.entries, span.match, span.lesion = [lesion], "rule", word
            else:
                span.dropped = "lesion"
                organ = self._best_entry(span)
                self.unresolved.append(Unresolved(f"{self._span_text(span)} {word}",
                                                  "a lesion is not its organ, and no engine segments this lesion", None))
                if organ:
                    self._pending_suggestions.append((organ.concept_id, span))
        self.spans.sort(key=lambda s: s.start)

    def _lesions_in_remarks(self):
        """'the pancreas, rule out tumour': a lesion named in a remark is the reason, not a request."""
        for span in self.spans:
            if span.dropped or span.side_from is not None or not all(
                    self.tree.get(e.concept_id).kind == "lesion" for e in span.entries):
                continue  # a lesion tied to a named organ ("a cyst in the right kidney") is a request
            k = span.start - 1
            while k >= 0 and self.tokens[k] not in self.lang.separators:
                if self.tokens[k] in self.lang.context_markers:
                    span.dropped = "lesion named in a remark"
                    break
                k -= 1

    def _lesion_concept(self, span: Span, word: str) -> Entry | None:
        organ_ids = {e.concept_id for e in span.entries}
        for e in span.entries:
            c = self.tree.get(e.concept_id)
            for text in (c.name, *c.synonyms):
                key = tuple(t for t in tokenize(text) if self.lang.side_of.get(t) not in ("left", "right")) + (word,)
                for hit in self.lex.lookup(key):
                    if self.tree.get(hit.concept_id).kind == "lesion":
                        return hit
        for key, entries in self.lex.keys.items():
            if key[-1:] != (word,):
                continue
            for hit in entries:
                lesion = self.tree.get(hit.concept_id)
                if lesion.kind != "lesion":
                    continue
                family = {hit.concept_id, *self.tree.ancestors(hit.concept_id)}
                for part in lesion.parts:
                    family.update(self.tree.ancestors(part))
                if family & organ_ids:
                    return hit
        return None

    def _part_nouns(self):
        """'renal hilum', 'upper pole of the left kidney': a part without a class, not the whole structure."""
        toks = self.tokens
        for span in self.spans:
            if span.dropped:
                continue
            part_at = None
            if span.end < len(toks) and toks[span.end] in self.lang.part_nouns:
                part_at = span.end
            else:
                k = span.start - 1
                while k >= 0 and self._is_side(k):
                    k -= 1
                if k >= 1 and toks[k] in ("of", "in") and toks[k - 1] in self.lang.part_nouns:
                    part_at = k - 1
            if part_at is None:
                continue
            span.dropped = "part without a class"
            self.used.add(part_at)
            for other in self.spans:  # "bladder neck": the part noun may itself be a (region) name
                if other is not span and other.start == part_at and other.end == part_at + 1:
                    other.dropped = "part noun"
            self.unresolved.append(Unresolved(f"{toks[part_at]} of {self._span_text(span)}",
                                              "a part of the structure that no engine labels on its own", None))
            e = self._best_entry(span)
            if e:
                self._pending_suggestions.append((e.concept_id, span))

    def _level_modifiers(self):
        """'L4 nerve root', 'L3 skeletal muscle': a vertebral level naming where another structure is."""
        for span in self.spans:
            if span.dropped or not all(e.concept_id.startswith("vertebrae_") for e in span.entries):
                continue
            nxt = [s for s in self.spans if s.start == span.end and not s.dropped]
            if nxt and not any(e.concept_id.startswith(("vertebrae", "intervertebral")) for e in nxt[0].entries):
                span.dropped = "level of another structure"

    def _variants(self):
        """'accessory spleen', 'ectopic kidney': a variant is not the structure the engines label."""
        for span in self.spans:
            k = span.start - 1
            while k >= 0 and self._is_side(k):
                k -= 1
            positional = (k >= 0 and k not in self.used and self.tokens[k] in self.lang.positional_words
                          and not any(o.start <= k < o.end for o in self.spans))
            if not span.dropped and positional:
                span.dropped = "region of the structure"
                self.used.add(k)
                self.unresolved.append(Unresolved(f"{self.tokens[k]} {self._span_text(span)}",
                                                  "only a region of the structure, which no engine labels apart", None))
                e = self._best_entry(span)
                if e:
                    self._pending_suggestions.append((e.concept_id, span))
                continue
            if not span.dropped and k >= 0 and self.tokens[k] in self.lang.variant_words:
                span.dropped = "variant"
                self.used.add(k)
                self.unresolved.append(Unresolved(f"{self.tokens[k]} {self._span_text(span)}",
                                                  "an anatomical variant no engine labels", None))
                e = self._best_entry(span)
                if e:
                    self._suggest(e.concept_id)

    def _procedures(self):
        for span in self.spans:
            if span.dropped or span.end >= len(self.tokens):
                continue
            nxt = self.tokens[span.end]
            if nxt in self.lang.procedure_words or (nxt.isalpha() and nxt.endswith(self.lang.procedure_suffixes)):
                span.dropped = "procedure"

    def _sided(self, cid: str, side: str | None) -> list[str] | None:
        if side in ("left", "right"):
            return self.tree.with_side(cid, side)
        return [cid]

    def _part_of_merges(self):
        """'lower lobe, left lung', 'renal cyst - left kidney': a part named with its (sided) container."""
        live = [s for s in self.spans if not s.dropped]
        for a, b in zip(live, live[1:]):
            between = range(a.end, b.start)
            if not all(self.tokens[k] in ("of", "in", "within", "from", ",", ":", "-") or self._is_side(k) for k in between):
                continue
            side = next((self.lang.side_of[self.tokens[k]] for k in between if self._is_side(k)), None) or b.side
            for ea in a.entries:
                for eb in b.entries:
                    containers = self._sided(eb.concept_id, side) or [eb.concept_id]
                    for try_side in ([side] if side in ("left", "right") else ["left", "right"]):
                        parts = self._sided(ea.concept_id, try_side) or []
                        if any(set(containers) & set(self.tree.ancestors(p)) for p in parts):
                            if side in ("left", "right"):
                                a.side, a.side_rule = side, "side of the containing structure"
                            b.dropped = "container of the part named before it"
                            self.used.update(between)
                            break
                    if b.dropped:
                        break
                if b.dropped:
                    break

    def _locatives(self):
        """'lymph nodes in the mediastinum', 'the gland in the neck': a location, not a second request."""
        for span in self.spans:
            if span.dropped:
                continue
            k = span.start - 1
            while k >= 0 and self._is_side(k):
                k -= 1
            if k < 1 or self.tokens[k] not in self.lang.locative_prepositions:
                continue
            before = self.tokens[k - 1]
            prev_span = any(s.end == k and not s.dropped for s in self.spans)
            verb = self.tokens[k - 2] if before in ("out", "back", "away", "up", "down") and k >= 2 else before
            if prev_span or before in self.lang.generic_heads or verb in self.lang.course_verbs:
                span.dropped = "location of another structure"

    # -- negation ---------------------------------------------------------------------------------
    def _negation(self):
        toks = self.tokens
        neg_at = []
        for k, t in enumerate(toks):
            two = tuple(toks[k:k + 2])
            if t in self.lang.negations or two in (
                    ("but", "not"), ("other", "than"), ("apart", "from"), ("not", "including"), ("leave", "out")):
                neg_at.append(k)
        for k in neg_at:
            end = next((j for j in range(k, len(toks)) if toks[j] in self.lang.clause_breaks), len(toks))
            for span in self.spans:
                if k < span.start < end:
                    span.excluded = True
            self.used.add(k)
