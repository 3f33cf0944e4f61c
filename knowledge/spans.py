"""Finding the names in a query: longest match of tree names (side words skipped inside a name),
spelling repair, vertebral levels and ranges, ordinals and number runs, elliptical lists
("gluteus medius and minimus"), index-style names ("carotid, right common")."""
from __future__ import annotations

from dataclasses import dataclass

from .lexicon import Entry
from .resolution import Unresolved

KIND_RANK = {"name": 0, "synonym": 1, "id": 2}
COORD = {"and", "&", "+", "plus", ",", "/", "or"}


@dataclass
class Span:
    start: int
    end: int
    entries: list                   # candidate lexicon entries (or synthetic ones from rules)
    match: str = "exact"
    score: float = 1.0
    side: str | None = None         # left | right | both | None
    side_rule: str | None = None
    dropped: str | None = None      # why this span is context, not a request
    excluded: bool = False          # named after "except"
    lesion: str | None = None       # the lesion word that made this span a lesion request
    side_from: "Span | None" = None # a lesion added to an organ takes the organ's side


class SpanFinding:
    """Mixin of the resolution pass: from tokens to candidate spans."""

    # -- spelling -------------------------------------------------------------------------------
    def _correct_spelling(self):
        split = []
        for tok in self.tokens:   # "spinalcord", "gallbladderwall": words run together
            pair = self.lex.split_joined(tok) if tok[:1].isalpha() and tok not in self.r.english else None
            split.extend(pair or (tok,))
        self.tokens = split
        from rapidfuzz import fuzz, process

        for i, tok in enumerate(self.tokens):
            if not tok[:1].isalpha() or tok in self.lang.side_of:
                continue
            if len(tok) <= 5 and tok not in self.r.english and tok not in self.lex.words:   # "lef", "rigth"
                side = process.extractOne(tok, ("left", "right"), scorer=fuzz.ratio, score_cutoff=75)
                if side:
                    self.corrected[i] = (tok, side[1] / 100.0)
                    self.tokens[i] = side[0]
                    continue
            neighbours = (self.tokens[i - 1] if i else None, self.tokens[i + 1] if i + 1 < len(self.tokens) else None)
            fixed = self.lex.correct_word(tok, self.r.english, neighbours)
            if fixed and fixed != tok:
                self.corrected[i] = (tok, fuzz.ratio(tok, fixed) / 100.0)
                self.tokens[i] = fixed

    # -- lexical spans --------------------------------------------------------------------------
    def _is_side(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and self.lang.side_of.get(self.tokens[i]) in ("left", "right", "both")

    def _find_spans(self):
        toks, n, i = self.tokens, len(self.tokens), 0
        while i < n:
            tok = toks[i]
            if tok.startswith("@id:"):
                cid = self.r._id_case.get(tok[4:])
                self._add_span(i, i + 1, [Entry(cid, "name", tok[4:])], match="exact")
                i += 1
                continue
            if tok.startswith("@lvl:"):
                self._add_level_span(i, tok[5:])
                i += 1
                continue
            if tok.startswith("@range:"):
                i = self._add_range(i, tok[7:].split("_"))
                continue
            found = self._longest_key(i)
            if found:
                idxs, entries, inner_side = found
                span = self._add_span(i, idxs[-1] + 1, entries)
                if inner_side is not None:
                    span.side = self.lang.side_of[toks[inner_side]]
                    span.side_rule = "side word inside the name"
                    self.used.add(inner_side)
                i = idxs[-1] + 1
            else:
                i += 1
        self.spans.sort(key=lambda s: s.start)

    def _longest_key(self, i: int):
        toks, n = self.tokens, len(self.tokens)
        if not toks[i][:1].isalnum() and not toks[i].startswith("#"):
            return None
        idxs, skipped, j = [i], None, i + 1
        while len(idxs) < 9 and j < n:
            if self._is_side(j) and skipped is None and j + 1 < n and self.lang.side_of[toks[j]] != "both":
                skipped = j
                j += 1
                continue
            idxs.append(j)
            j += 1
        for length in range(len(idxs), 0, -1):
            key = tuple(toks[k] for k in idxs[:length])
            entries = self.lex.lookup(key)
            if entries:
                end = idxs[length - 1]
                inner = skipped if skipped is not None and i < skipped < end else None
                return idxs[:length], list(entries), inner
        return None

    def _add_span(self, start, end, entries, match=None) -> Span:
        if match is None:
            kinds = sorted(entries, key=lambda e: KIND_RANK[e.kind])
            match = "exact" if kinds[0].kind in ("name", "id") else "synonym"
        score = 1.0
        fixed = [self.corrected[k][1] for k in range(start, end) if k in self.corrected]
        if fixed:
            match, score = "fuzzy", min(fixed)
        span = Span(start, end, entries, match=match, score=score)
        self.spans.append(span)
        self.used.update(range(start, end))
        return span

    def _add_level_span(self, i: int, level: str):
        cid = f"vertebrae_{level}"
        if cid in self.tree:
            self._add_span(i, i + 1, [Entry(cid, "synonym", level)], match="rule")
            return
        self.used.add(i)
        if level[0] == "S" and 2 <= int(level[1:]) <= 5:   # fused sacral segments: inside the sacrum, no class
            self.unresolved.append(Unresolved(level, "a sacral segment without a class of its own", "sacrum"))
            self._suggest("sacrum")
        else:
            self.unresolved.append(Unresolved(level, "no such vertebral level", None))

    def _add_range(self, i: int, levels: list[str]) -> int:
        toks = self.tokens
        j = i + 1
        while j < len(toks) and toks[j] in ("intervertebral", "vertebral", "space"):
            j += 1
        if j < len(toks) and toks[j] in ("disc", "discs"):
            for a, b in zip(levels, levels[1:]):
                cid = f"intervertebral_disc_{a}_{b}"
                if cid in self.tree:
                    self._add_span(i, i + 1, [Entry(cid, "synonym", f"{a}-{b} disc")], match="rule")
            self.used.update(range(i, j + 1))
            return j + 1
        for level in levels:
            self._add_level_span(i, level)
        return i + 1

    def _extend_spans_fuzzily(self):
        """'coastal cartilages': a real English word next to a span may be a misspelt part of a longer name."""
        for span in list(self.spans):
            for side in ("before", "after"):
                k = span.start - 1 if side == "before" else span.end
                if not (0 <= k < len(self.tokens)) or k in self.used:
                    continue
                word = self.tokens[k]
                if not word.isalpha() or word in self.lang.fillers or word in self.lang.context_markers or len(word) < 4:
                    continue
                words = self.tokens[span.start:span.end]
                phrase = " ".join([word] + words if side == "before" else words + [word])
                hit = self.lex.nearest_phrase(phrase, cutoff=90)
                from rapidfuzz import fuzz
                keep = tuple(words)
                if hit and len(hit[0]) == len(words) + 1:
                    # the span's own words stay (near enough: "glutes medius" -> gluteus medius); only the
                    # neighbour may be the misspelt one ("coastal cartilage"), never a different name ("adrenal mass")
                    same = hit[0][1:] if side == "before" else hit[0][:-1]
                    extra = hit[0][0] if side == "before" else hit[0][-1]
                    if any(fuzz.ratio(a, b) < 80 for a, b in zip(same, keep)):
                        continue
                    if fuzz.ratio(extra, word) < 80 or word in self.lang.lesion_words:
                        continue
                    span.entries = list(self.lex.lookup(hit[0]))
                    span.match, span.score = "fuzzy", hit[1] / 100.0
                    span.start, span.end = min(span.start, k), max(span.end, k + 1)
                    self.used.add(k)


    def _residual_word(self, k: int) -> bool:
        return (0 <= k < len(self.tokens) and k not in self.used and self.tokens[k][:1].isalpha()
                and self.tokens[k] not in self.lang.fillers and self.tokens[k] not in self.lang.side_of)

    def _elliptical_coordination(self):
        """'gluteus medius and minimus', 'upper and lower lobes': a name shared by coordinated words."""
        for span in list(self.spans):
            words = [t for t in self.tokens[span.start:span.end]]
            if len(words) < 2:
                continue
            # forward: span CONJ word -> span's head with the word swapped in
            k = span.end
            while k < len(self.tokens) and self.tokens[k] in COORD:
                k += 1
            if k > span.end and self._residual_word(k):
                entries = self.lex.lookup(tuple(words[:-1]) + (self.tokens[k],))
                if entries:
                    self._add_span(k, k + 1, list(entries))
            # backward: word CONJ span -> the word with the span's tail
            k = span.start - 1
            while k >= 0 and self.tokens[k] in COORD:
                k -= 1
            if k < span.start - 1 and 0 <= k and k not in self.used and self.tokens[k].isalpha() and not self._is_side(k):
                entries = self.lex.lookup((self.tokens[k],) + tuple(words[1:]))
                if entries:
                    self._add_span(k, k + 1, list(entries))
        self.spans.sort(key=lambda s: s.start)

    def _inverted_names(self):
        """'carotid, right common', 'vein, left renal': index-style names with the modifier after a comma."""
        for span in list(self.spans):
            k = span.end
            if k >= len(self.tokens) or self.tokens[k] != ",":
                continue
            j, words, sides = k + 1, [], []
            while j < len(self.tokens) and len(words) < 3 and (self._residual_word(j) or self._is_side(j)):
                (sides if self._is_side(j) else words).append(j)
                j += 1
            if not words or (j < len(self.tokens) and self.tokens[j] not in self.lang.separators):
                continue
            entries = self.lex.lookup(tuple(self.tokens[w] for w in words) + tuple(self.tokens[span.start:span.end]))
            if entries:
                span.entries, span.match = list(entries), "rule"
                self.used.update(range(k, k + 1))
                self.used.update(words)
                span.end = words[-1] + 1 if words[-1] + 1 > span.end else span.end
                if sides:
                    span.side = self.lang.side_of[self.tokens[sides[0]]]
                    span.side_rule = "patient's side named after the structure"
                    self.used.update(sides)

    def _discs_between_levels(self):
        """'the disc between C5 and C6': one disc, not two vertebrae."""
        for span in self.spans:
            if span.dropped or {e.concept_id for e in span.entries} != {"intervertebral_discs"}:
                continue
            k = span.end
            if k >= len(self.tokens) or self.tokens[k] != "between":
                continue
            after, seen = [], set()
            for s in sorted(self.spans, key=lambda s: s.start):   # "lumbar vertebrae 1 (l1)" names L1 twice
                cid = s.entries[0].concept_id if s.entries else None
                if s.start >= span.end and not s.dropped and cid not in seen:
                    seen.add(cid)
                    after.append(s)
            if len(after) < 2:
                continue
            a, b = after[0], after[1]
            levels = [e.concept_id.removeprefix("vertebrae_") for s in (a, b) for e in s.entries[:1]]
            levels = ["S1" if s.entries[0].concept_id == "sacrum" else lv for s, lv in zip((a, b), levels)]
            disc = f"intervertebral_disc_{levels[0]}_{levels[1]}"
            if disc in self.tree:
                span.entries, span.match = [Entry(disc, "synonym", f"{levels[0]}-{levels[1]} disc")], "rule"
                named = {a.entries[0].concept_id, b.entries[0].concept_id}
                for s in self.spans:   # the two levels, however often each was named
                    if s is not span and s.start >= span.end and (s.end <= b.end or (
                            s.start <= b.end + 2 and s.entries and s.entries[0].concept_id in named)):
                        s.dropped = "level naming a disc"
                span.end = b.end

    def _absorb_head_nouns(self):
        """'L3 vertebra', 'C4-C6 vertebrae', 'autochthon muscle': a generic noun next to the structure it heads."""
        for span in self.spans:
            if span.dropped:
                continue
            words = self.tokens[span.start:span.end]
            if len(words) == 1 and words[0] in self.lang.generic_heads and any(
                    o.end == span.start and not o.dropped for o in self.spans):
                span.dropped = "head noun of the structure before it"
                continue
            for other in self.spans:
                if other is span or other.dropped or not (other.end == span.start or span.end == other.start):
                    continue
                generic_vertebra = {e.concept_id for e in span.entries} <= {"vertebrae_body", "vertebrae"} and all(
                    o.concept_id.startswith("vertebrae_") for o in other.entries)
                if generic_vertebra or all(self._contains(e.concept_id, o.concept_id) for e in span.entries for o in other.entries):
                    span.dropped = "head noun of the structure next to it"
                    break

    def _contains(self, group: str, cid: str) -> bool:
        if group == cid:
            return False
        seen, stack = set(), [cid]
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            ups = self.tree.containers(c) + ([self.tree.get(c).parent] if self.tree.get(c).parent else [])
            if group in ups:
                return True
            stack.extend(u for u in ups if u in self.tree)
        return False

    # -- numbers --------------------------------------------------------------------------------
    def _number_at(self, k: int) -> int | None:
        if 0 <= k < len(self.tokens) and self.tokens[k].startswith("#") and k not in self.used:
            return int(self.tokens[k][1:])
        return None

    def _numbers_at(self, k: int) -> list[int] | None:
        if 0 <= k < len(self.tokens) and self.tokens[k].startswith("@nums:") and k not in self.used:
            return [int(n) for n in self.tokens[k][6:].split("_")]
        n = self._number_at(k)
        return [n] if n is not None else None

    def _attach_ordinals(self):
        for span in list(self.spans):
            cids = [e.concept_id for e in span.entries]
            if not any(self.tree.descendant_with_ordinal(c, 1) or self.tree.descendant_with_ordinal(c, 2) for c in cids):
                continue
            k = span.start - 1
            while k >= 0 and self._is_side(k):
                k -= 1
            numbers, at = self._numbers_at(k), k
            if numbers is None:
                k = span.end
                while k < len(self.tokens) and self._is_side(k):
                    k += 1
                numbers, at = self._numbers_at(k), k
            if numbers is None:
                continue
            self.used.add(at)
            picked, missing = [], []
            for number in numbers:
                found = [Entry(d, "synonym", f"{e.text} {number}") for e in span.entries
                         if (d := self.tree.descendant_with_ordinal(e.concept_id, number))]
                picked.extend(found[:1])
                if not found:
                    missing.append(number)
            if picked and not missing:
                span.entries, span.match = picked[:1], "rule"
                for extra in picked[1:]:  # a run of numbers: one span each, same words and side
                    self.spans.append(Span(span.start, span.end, [extra], match="rule", side_from=span))
            else:
                span.dropped = "no such number"
                self.unresolved.append(Unresolved(self._span_text(span) + " " + " ".join(map(str, missing or numbers)),
                                                  f"there is no number {', '.join(map(str, missing or numbers))}", None))
        # "ribs 11 and 12", "11th and 12th ribs": a bare number coordinated with a numbered span
        for k, tok in enumerate(self.tokens):
            number = self._number_at(k)
            if number is None:
                continue
            neighbour = self._numbered_neighbour(k)
            if neighbour is None:
                continue
            sib = [Entry(s, "synonym", str(number)) for e in neighbour.entries
                   if (s := self.tree.sibling_with_ordinal(e.concept_id, number))]
            if sib:
                new = Span(k, k + 1, sib, match="rule", side=neighbour.side, side_rule=neighbour.side_rule)
                self.spans.append(new)
                self.used.add(k)
        self.spans.sort(key=lambda s: s.start)

    def _numbered_neighbour(self, k: int) -> Span | None:
        for span in self.spans:
            between = range(span.end, k) if span.end <= k else range(k + 1, span.start)
            if len(between) > 3 or not all(self.tokens[b] in COORD or self._is_side(b) for b in between):
                continue
            if not between:
                continue
            if all(self.tree.find(e.concept_id) and self.tree.get(e.concept_id).ordinal for e in span.entries):
                return span
        return None
