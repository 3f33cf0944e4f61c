"""What is left over (fuzzy phrases, then semantic neighbours) and the final decision: which concepts
the scope can segment, what stays unresolved, what to suggest, and the status."""
from __future__ import annotations

from .lexicon import Entry
from .resolution import Match, Resolution, Unresolved
from .spans import COORD, KIND_RANK, Span

EMBED_ACCEPT = 0.85      # cosine similarity at which a nearest neighbour may stand as the answer
EMBED_SUGGEST = 0.55     # below this a neighbour is not even worth suggesting (unrelated text scores ~0.3)


class Decision:
    """Mixin of the resolution pass: leftovers, choice per span, and the Resolution."""

    # -- leftovers ---------------------------------------------------------------------------------
    def _chunks(self):
        """Runs of unconsumed tokens between spans and separators."""
        chunks, current = [], []
        span_tokens = set()
        for s in self.spans:
            span_tokens.update(range(s.start, s.end))
        for k, tok in enumerate(self.tokens):
            if k in span_tokens or k in self.used or tok in self.lang.separators or tok in COORD:
                if current:
                    chunks.append(current)
                    current = []
                continue
            current.append(k)
        if current:
            chunks.append(current)
        return chunks

    def _leftovers(self):
        live = self.spans  # dropped spans count: the query did name anatomy, so stray words are context
        span_tokens = set()
        for s in self.spans:
            span_tokens.update(range(s.start, s.end))
        for chunk in self._chunks():
            words = [self.tokens[k] for k in chunk]
            if any(w in self.lang.context_markers for w in words):
                continue
            if live and words[0] in self.lang.locative_prepositions | {"to", "between", "including"}:
                continue  # "..., from root to bifurcation": a description of the structure before it
            content = [w for w in words if w[:1].isalpha() and w not in self.lang.fillers and w not in self.lang.side_of
                       and w not in self.lang.lesion_words and w not in self.lang.procedure_words and len(w) > 1]
            if not [w for w in content if w not in self.lang.part_nouns and w not in self.lang.positional_words]:
                continue  # only "root", "upper", ...: a description, not a structure
            if live:
                before = chunk[0] - 1
                after = chunk[-1] + 1
                bounded_before = before < 0 or self.tokens[before] in self.lang.separators or self.tokens[before] in COORD
                bounded_after = after >= len(self.tokens) or self.tokens[after] in self.lang.separators or self.tokens[after] in COORD
                if not (bounded_before and bounded_after) or len(content) > 4 or before in span_tokens or after in span_tokens:
                    continue
            self._resolve_chunk(chunk, content)

    def _resolve_chunk(self, chunk, content):
        if len(content) == 1:   # a lone list item may be an ordinary word misspelt ("brain" typed "brian")
            fixed = self.lex.correct_word(content[0], self.r.english, force=True)
            content = [fixed] if fixed and self.lex.lookup((fixed,)) else content
        text = " ".join(content)
        side = next((self.lang.side_of[self.tokens[k]] for k in chunk if self._is_side(k)), None)
        hit = self.lex.nearest_phrase(text)
        if hit:
            span = Span(chunk[0], chunk[-1] + 1, list(self.lex.lookup(hit[0])), match="fuzzy", score=hit[1] / 100.0,
                        side=side, side_rule="patient's side named with the structure" if side else None)
            self.spans.append(span)
            return
        # by meaning: the leftover words as written (descriptive words kept), without sides or request verbs
        meaning = " ".join(self.tokens[k] for k in chunk if self.tokens[k][:1].isalpha() and not self._is_side(k)
                           and self.tokens[k] not in self.lang.request_words and self.tokens[k] not in self.lang.context_markers)
        semantic = self.r.semantic() if len(meaning) >= 3 else None
        hits = semantic.search(meaning, k=8) if semantic else []
        accepted = None
        # a lone generic word ("arteries") is too vague to stand on similarity alone
        if hits and hits[0][1] >= EMBED_ACCEPT and len(content) >= 2:
            cid = hits[0][0]
            if self.tree.covered(cid, self.scope, self.modality) and self.tree.get(cid).kind != "lesion":
                accepted = cid
        if accepted:
            self.spans.append(Span(chunk[0], chunk[-1] + 1, [Entry(accepted, "synonym", text)], match="embedding",
                                   score=hits[0][1], side=side,
                                   side_rule="patient's side named with the structure" if side else None))
            return
        self.unresolved.append(Unresolved(" ".join(self.tokens[k] for k in chunk), "not recognised as anatomy", None))
        for cid, score in hits[:3]:
            if score >= EMBED_SUGGEST:
                self._suggest(cid)

    # -- decision ---------------------------------------------------------------------------------
    def _span_text(self, span: Span) -> str:
        words = []
        for t in self.tokens[span.start:span.end]:
            if t.startswith("@"):
                t = t.split(":", 1)[1].replace("_", "-") if not t.startswith("@id:") else t[4:]
            words.append(t.lstrip("#"))
        return " ".join(words) or " ".join(e.text for e in span.entries[:1])

    def _best_entry(self, span: Span) -> Entry | None:
        return min(span.entries, key=lambda e: KIND_RANK[e.kind]) if span.entries else None

    def _suggest(self, cid: str, side: str | None = None):
        """Suggest the nearest concept an engine in scope covers: cid itself, or its containers."""
        chain, frontier = [cid], [cid]
        while frontier:  # outward through containers and groups, nearest first: T12 -> thoracic spine -> vertebrae
            nxt = []
            for c in frontier:
                concept = self.tree.get(c)
                for up in ([concept.parent] if concept.parent else []) + self.tree.containers(c):
                    if up in self.tree and up not in chain:
                        chain.append(up)
                        nxt.append(up)
            frontier = nxt
        for c in chain:
            # a side narrows a pair (kidneys -> left kidney), never an unpaired container (thyroid gland)
            paired = self.tree.get(c).laterality in ("bilateral", "left", "right")
            options = (self._sided(c, side) if paired else None) or [c]
            if all(self.tree.covered(o, self.scope, self.modality) for o in options):
                for o in options:
                    if o not in self.suggestions:
                        self.suggestions.append(o)
                return
        # nothing above it is covered: offer what lies within it ("carotid arteries" -> common carotid arteries)
        for child in self.tree.children(cid):
            options = self._sided(child, side) or [child]
            if all(self.tree.covered(o, self.scope, self.modality) for o in options):
                self.suggestions.extend(o for o in options if o not in self.suggestions)

    def _choose(self, span: Span):
        """Apply the span's side to its candidates and keep what the scope can segment."""
        side = span.side
        options = []
        for e in sorted(span.entries, key=lambda e: KIND_RANK[e.kind]):
            sided = self._sided(e.concept_id, side)
            if sided:
                options.append((e, sided))
        text = self._span_text(span)
        if not options:
            e = self._best_entry(span)
            name = self.tree.get(e.concept_id).name if e else text
            self.unresolved.append(Unresolved(f"{side} {text}", f"'{name}' has no {side} side", e.concept_id if e else None))
            if e:
                self._suggest(e.concept_id)
            return None
        covered = [(e, s) for e, s in options if all(self.tree.covered(x, self.scope, self.modality) for x in s)]
        if not covered:
            e, sided = options[0]
            pair = self.tree.get(e.concept_id)
            if pair.laterality == "bilateral" and side not in ("left", "right"):
                # "atrial appendage": one side has a class, the other not -> the side that has, and say so
                have = [p for p in pair.parts if self.tree.covered(p, self.scope, self.modality)]
                if have:
                    for p in pair.parts:
                        if p not in have:
                            self.unresolved.append(Unresolved(self.tree.get(p).name, "no engine in scope segments this side", p))
                    return have
            self.unresolved.append(Unresolved(text, "the tree knows it, but no engine in scope segments it", sided[0]))
            for x in sided:
                self._suggest(x, side if side in ("left", "right") else None)
            return None
        best_rank = KIND_RANK[covered[0][0].kind]
        top = [(e, s) for e, s in covered if KIND_RANK[e.kind] == best_rank]
        distinct = {tuple(s) for _, s in top}
        if len(distinct) > 1:
            return ("ambiguous", [x for _, s in top for x in s])
        return covered[0][1]

    def _decide(self) -> Resolution:
        for cid, span in self._pending_suggestions:
            self._suggest(cid, span.side if span.side in ("left", "right") else None)
        included: list[tuple[str, Span]] = []
        excluded: set[str] = set()
        uncovered_parts: list[Span] = []
        ambiguous: list[str] = []
        for span in sorted(self.spans, key=lambda s: s.start):
            if span.dropped:
                continue
            if span.excluded and not any(self.tree.covered(e.concept_id, self.scope, self.modality) for e in span.entries):
                uncovered_parts.append(span)
                continue
            chosen = self._choose(span)
            if chosen is None:
                continue
            if isinstance(chosen, tuple):
                ambiguous.extend(c for c in chosen[1] if c not in ambiguous)
                continue
            for cid in chosen:
                if span.excluded:
                    excluded.add(cid)
                else:
                    included.append((cid, span))
        ids: list[tuple[str, Span]] = []
        if excluded:
            closed = set()
            for e in excluded:
                closed |= self._closure(e)
            for cid, span in included:
                for part in self._without(cid, closed):
                    ids.append((part, span))
        else:
            ids = included
        for span in uncovered_parts:
            # "left lung excluding the lingula": a part no engine labels apart cannot be cut out of its container
            inside = set()
            for e in span.entries:
                for sided in self._sided(e.concept_id, span.side) or [e.concept_id]:
                    inside |= {sided, *self.tree.ancestors(sided)}
            if any(self._closure(cid) & inside for cid, _ in ids):
                self.unresolved.append(Unresolved(f"except {self._span_text(span)}",
                                                  "cannot be left out: no engine labels it apart", None))
        matches, seen = [], set()
        for cid, span in ids:
            if cid in seen:
                continue
            seen.add(cid)
            rule_made = excluded and cid != (span.entries[0].concept_id if span.entries else None)
            matches.append(Match(id=cid, text=self._span_text(span), match="rule" if rule_made else span.match,
                                 score=span.score, side_rule=span.side_rule))
        self.suggestions = [s for s in self.suggestions if s not in seen]
        if matches:
            status = "partial" if (self.unresolved or ambiguous) else "ok"
            if ambiguous and not self.question:
                self.question = "Which did you mean: " + " or ".join(self.tree.get(c).name for c in ambiguous[:4]) + "?"
                self.candidates = ambiguous
        elif ambiguous:
            status = "ambiguous"
            self.candidates = ambiguous
            self.question = "Which did you mean: " + " or ".join(self.tree.get(c).name for c in ambiguous[:4]) + "?"
        else:
            status = "unknown"
            if self.suggestions:
                self.question = ("I can't segment that here. Did you mean: "
                                 + ", ".join(self.tree.get(s).name for s in self.suggestions[:3]) + "?")
            elif any(u.concept for u in self.unresolved):
                known = next(u.concept for u in self.unresolved if u.concept)
                where = {"main": "the main TotalSegmentator task", "totalseg": "TotalSegmentator",
                         "any": "any installed engine vocabulary"}[self.scope]
                self.question = (f"I know '{self.tree.get(known).name}', but {where} does not segment it"
                                 f"{' on ' + self.modality.upper() if self.modality else ''}.")
            else:
                self.question = "I can't segment that: it names no structure I know. Try `prosector terms --list`."
        return Resolution(query=self.text, status=status, concepts=matches, unresolved=self.unresolved,
                          suggestions=self.suggestions[:5], question=self.question, candidates=self.candidates,
                          modality=self.modality, scope=self.scope)

    def _closure(self, cid: str) -> set[str]:
        out, stack = set(), [cid]
        while stack:
            c = stack.pop()
            if c in out or c not in self.tree:
                continue
            out.add(c)
            stack.extend(self.tree.get(c).parts)
        return out

    def _without(self, cid: str, closed: set[str]) -> list[str]:
        if cid in closed:
            return []
        if not (self._closure(cid) & closed):
            return [cid]
        out = []
        for part in self.tree.get(cid).parts:
            out.extend(self._without(part, closed))
        return out
