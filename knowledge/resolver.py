"""Free text -> concepts of the anatomy tree, or an honest "unknown".

Order of work: normalise (text.py) -> spell-correct unknown words -> longest match of tree names
and synonyms (side words are skipped inside a name and decided apart) -> vertebral levels, ordinals,
lists and negation -> lesions, procedures and locations that are context, not requests ->
laterality by rule (patient's side; viewer's side flipped by the radiological convention) ->
what is left over: fuzzy phrase match, then semantic nearest neighbours (never for laterality).
A concept is returned only when an engine in the requested scope segments it exactly; a part
that no engine covers is reported as unresolved with its container among the suggestions.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from prosector.errors import InputError

from .lexicon import Entry, Lexicon, english_words, lexicon
from .resolution import Match, Resolution, Unresolved
from .text import language, tokenize
from .tree import Tree, load_tree

SCOPES = ("main", "totalseg", "any")
MAX_QUERY_CHARS = 1000
EMBED_ACCEPT = 0.85      # cosine similarity at which a nearest neighbour may stand as the answer
EMBED_SUGGEST = 0.55     # below this a neighbour is not even worth suggesting (unrelated text scores ~0.3)
_FILE_SUFFIX = re.compile(r"\.(nii(\.gz)?|nrrd|nhdr|mha|mhd|mgz|mgh|dcm|zip|png|jpe?g|json|txt|csv|ya?ml|npy|npz)$", re.I)
_KIND_RANK = {"name": 0, "synonym": 1, "id": 2}
_COORD = {"and", "&", "+", "plus", ",", "/", "or"}


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


def normalise_modality(modality: str | None) -> str | None:
    if modality is None:
        return None
    m = str(modality).strip().lower()
    aliases = {"ct": "ct", "mr": "mr", "mri": "mr", "pet": "pet"}
    if m not in aliases:
        raise InputError(f"unknown modality '{modality}': use ct or mr")
    return aliases[m]


class Resolver:
    def __init__(self, tree: Tree, lex: Lexicon, semantic=None):
        self.tree = tree
        self.lex = lex
        self.lang = language()
        self.english = english_words()
        self.known_ids = frozenset(c.id.lower() for c in tree if "_" in c.id)
        self._id_case = {c.id.lower(): c.id for c in tree}
        self._semantic = semantic          # None: built lazily on first need; False: disabled

    # -- public -------------------------------------------------------------------------------
    def resolve(self, text: str, modality: str | None = None, scope: str = "any") -> Resolution:
        modality = normalise_modality(modality)
        if scope not in SCOPES:
            raise InputError(f"unknown scope '{scope}': use one of {', '.join(SCOPES)}")
        early = self._check_input(text, modality, scope)
        if early is not None:
            return early
        return _Pass(self, text, modality, scope).run()

    def semantic(self):
        if self._semantic is None:
            try:
                from .semantic import SemanticIndex
                self._semantic = SemanticIndex.load_or_build(self.tree, self.lex)
            except Exception:  # no model wheel or no faiss: lexical resolution still works
                self._semantic = False
        return self._semantic or None

    # -- input checks -----------------------------------------------------------------------------
    def _check_input(self, text, modality, scope) -> Resolution | None:
        if not isinstance(text, str):
            raise InputError(f"the query must be text, got {type(text).__name__}")
        stripped = text.strip()
        if not stripped:
            raise InputError("empty query: name a structure, e.g. 'left kidney'")
        if len(stripped) > MAX_QUERY_CHARS:
            raise InputError(f"query is {len(stripped)} characters long; name the structures in at most {MAX_QUERY_CHARS}")
        if _looks_like_path(stripped):
            raise InputError(f"'{stripped[:80]}' looks like a file path, not an anatomy term: pass the scan as the image "
                             "argument and name the structure in words")
        if not re.search(r"[A-Za-z0-9]", _ascii(stripped)):
            if re.search(r"\w", stripped):
                question = "I read anatomy terms in English or Latin (Latin script); please rephrase the request."
            else:
                question = "The query has no words; name a structure, e.g. 'left kidney'."
            return Resolution(query=text, status="unknown", question=question, modality=modality, scope=scope)
        return None


def _ascii(text: str) -> str:
    from .text import fold
    return fold(text).encode("ascii", "ignore").decode()


def _looks_like_path(text: str) -> bool:
    if " " in text.strip():
        return bool(_FILE_SUFFIX.search(text.strip()) and ("/" in text or "\\" in text))
    return bool(text.startswith(("/", "./", "../", "~/", "\\")) or re.match(r"^[A-Za-z]:\\", text)
                or _FILE_SUFFIX.search(text) or text.count("/") >= 2)


class _Pass:
    """One resolution: the state of a single query as the rules work through it."""

    def __init__(self, resolver: Resolver, text: str, modality: str | None, scope: str):
        self.r = resolver
        self.tree = resolver.tree
        self.lex = resolver.lex
        self.lang = resolver.lang
        self.text = text
        self.modality = modality
        self.scope = scope
        self.tokens = tokenize(text, resolver.known_ids)
        self.corrected: dict[int, tuple[str, float]] = {}
        self.used: set[int] = set()            # token indices a span or rule has consumed
        self.spans: list[Span] = []
        self.unresolved: list[Unresolved] = []
        self.suggestions: list[str] = []
        self.question: str | None = None
        self.candidates: list[str] = []
        self._pending_suggestions: list[tuple[str, Span]] = []   # suggested once sides are known

    # -- driver ---------------------------------------------------------------------------------
    def run(self) -> Resolution:
        self._correct_spelling()
        self._find_spans()
        self._extend_spans_fuzzily()
        self._elliptical_coordination()
        self._inverted_names()
        self._attach_ordinals()
        self._absorb_head_nouns()
        self._lesions()
        self._part_nouns()
        self._level_modifiers()
        self._variants()
        self._procedures()
        self._part_of_merges()
        self._locatives()
        self._sides()
        self._negation()
        self._leftovers()
        return self._decide()

    # -- spelling -------------------------------------------------------------------------------
    def _correct_spelling(self):
        split = []
        for tok in self.tokens:   # "spinalcord", "gallbladderwall": words run together
            pair = self.lex.split_joined(tok) if tok[:1].isalpha() and tok not in self.r.english else None
            split.extend(pair or (tok,))
        self.tokens = split
        for i, tok in enumerate(self.tokens):
            if not tok[:1].isalpha() or tok in self.lang.side_of:
                continue
            fixed = self.lex.correct_word(tok, self.r.english)
            if fixed and fixed != tok:
                from rapidfuzz import fuzz
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
            kinds = sorted(entries, key=lambda e: _KIND_RANK[e.kind])
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
        else:
            self.used.add(i)
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
                keep = tuple(words)
                if hit and len(hit[0]) == len(words) + 1 and (hit[0][1:] == keep if side == "before" else hit[0][:-1] == keep):
                    from rapidfuzz import fuzz
                    extra = hit[0][0] if side == "before" else hit[0][-1]
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
            while k < len(self.tokens) and self.tokens[k] in _COORD:
                k += 1
            if k > span.end and self._residual_word(k):
                entries = self.lex.lookup(tuple(words[:-1]) + (self.tokens[k],))
                if entries:
                    self._add_span(k, k + 1, list(entries))
            # backward: word CONJ span -> the word with the span's tail
            k = span.start - 1
            while k >= 0 and self.tokens[k] in _COORD:
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

    def _absorb_head_nouns(self):
        """'L3 vertebra', 'C4-C6 vertebrae': a generic noun next to the specific structure it heads."""
        for span in self.spans:
            if span.dropped:
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
            if len(between) > 3 or not all(self.tokens[b] in _COORD or self._is_side(b) for b in between):
                continue
            if not between:
                continue
            if all(self.tree.find(e.concept_id) and self.tree.get(e.concept_id).ordinal for e in span.entries):
                return span
        return None

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
                    self._suggest(organ.concept_id)
        self.spans.sort(key=lambda s: s.start)

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
            if between and all(t in _COORD for t in between):
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

    # -- leftovers ---------------------------------------------------------------------------------
    def _chunks(self):
        """Runs of unconsumed tokens between spans and separators."""
        chunks, current = [], []
        span_tokens = set()
        for s in self.spans:
            span_tokens.update(range(s.start, s.end))
        for k, tok in enumerate(self.tokens):
            if k in span_tokens or k in self.used or tok in self.lang.separators or tok in _COORD:
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
                bounded_before = before < 0 or self.tokens[before] in self.lang.separators or self.tokens[before] in _COORD
                bounded_after = after >= len(self.tokens) or self.tokens[after] in self.lang.separators or self.tokens[after] in _COORD
                if not (bounded_before and bounded_after) or len(content) > 4 or before in span_tokens or after in span_tokens:
                    continue
            self._resolve_chunk(chunk, content)

    def _resolve_chunk(self, chunk, content):
        text = " ".join(content)
        side = next((self.lang.side_of[self.tokens[k]] for k in chunk if self._is_side(k)), None)
        hit = self.lex.nearest_phrase(text)
        if hit:
            span = Span(chunk[0], chunk[-1] + 1, list(self.lex.lookup(hit[0])), match="fuzzy", score=hit[1] / 100.0,
                        side=side, side_rule="patient's side named with the structure" if side else None)
            self.spans.append(span)
            return
        semantic = self.r.semantic() if len(text) >= 3 else None
        hits = semantic.search(text, k=8) if semantic else []
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
        return min(span.entries, key=lambda e: _KIND_RANK[e.kind]) if span.entries else None

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
            options = self._sided(c, side) or [c]
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
        for e in sorted(span.entries, key=lambda e: _KIND_RANK[e.kind]):
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
        best_rank = _KIND_RANK[covered[0][0].kind]
        top = [(e, s) for e, s in covered if _KIND_RANK[e.kind] == best_rank]
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


@functools.lru_cache(maxsize=1)
def default_resolver() -> Resolver:
    return Resolver(load_tree(), lexicon())


def resolve(text: str, modality: str | None = None, scope: str = "any") -> Resolution:
    """Resolve free text to anatomy concepts.

    modality: ct | mr | None (either). scope: which engines count as able to segment a concept:
    `main` the modality's main TotalSegmentator task (total / total_mr), `totalseg` any of its tasks,
    `any` any engine the tree names (TotalSegmentator or SAT).
    """
    return default_resolver().resolve(text, modality=modality, scope=scope)
