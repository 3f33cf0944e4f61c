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

from prosector.errors import InputError

from .context import ContextRules
from .decision import EMBED_ACCEPT, EMBED_SUGGEST, Decision
from .lexicon import Lexicon, english_words, lexicon
from .resolution import Resolution, Unresolved
from .sides import SideRules
from .spans import Span, SpanFinding
from .text import language, tokenize
from .tree import Tree, load_tree

SCOPES = ("main", "totalseg", "any")
MAX_QUERY_CHARS = 1000
_FILE_SUFFIX = re.compile(r"\.(nii(\.gz)?|nrrd|nhdr|mha|mhd|mgz|mgh|dcm|zip|png|jpe?g|json|txt|csv|ya?ml|npy|npz)$", re.I)
__all__ = ["EMBED_ACCEPT", "EMBED_SUGGEST", "MAX_QUERY_CHARS", "SCOPES", "Resolver", "Span", "default_resolver", "resolve"]


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
    def resolve(self, text: str, modality: str | None = None, scope: str = "main") -> Resolution:
        modality = normalise_modality(modality)
        if scope not in SCOPES:
            raise InputError(f"unknown scope '{scope}': use one of {', '.join(SCOPES)}")
        early = self._check_input(text, modality, scope)
        if early is not None:
            return early
        return _Pass(self, text, modality, scope).run()

    def semantic(self):
        """The cached semantic index, built on first need; None when the model or faiss is missing."""
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
    # "L4/L5/S1" and "liver/spleen" are lists, not paths: only a rooted path or a file name counts
    return bool(text.startswith(("/", "./", "../", "~/", "\\")) or re.match(r"^[A-Za-z]:\\", text)
                or _FILE_SUFFIX.search(text))


class _Pass(SpanFinding, ContextRules, SideRules, Decision):
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
        self._discs_between_levels()
        self._absorb_head_nouns()
        self._lesions()
        self._lesions_in_remarks()
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


@functools.lru_cache(maxsize=1)
def default_resolver() -> Resolver:
    return Resolver(load_tree(), lexicon())


def resolve(text: str, modality: str | None = None, scope: str = "main") -> Resolution:
    """Resolve free text to anatomy concepts.

    modality: ct | mr | None (either). scope: which engines count as able to segment a concept:
    `main` (default) the modality's main TotalSegmentator task (total / total_mr): what Prosector
    segments out of the box, and the policy its query sets are scored by; `totalseg` any
    TotalSegmentator task; `any` any engine the tree names (TotalSegmentator subtasks or SAT), for a
    caller that will route such concepts to an engine that has them.
    """
    return default_resolver().resolve(text, modality=modality, scope=scope)
