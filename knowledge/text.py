"""Text normalisation shared by the lexicon and the resolver: the same words on both sides.

`tokenize` turns free text into tokens: lower case, British spellings and plurals folded, numbers
and ordinals as `#n`, vertebral levels and level ranges as `@lvl:L3`, raw concept ids (as an agent
might send `kidney_cyst_right`) as `@id:...`. Grammar words are listed in data/language.yaml.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

LANGUAGE_FILE = Path(__file__).resolve().parent / "data" / "language.yaml"

LEVEL_ORDER = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]
_LEVEL_PREFIX = {"c": "C", "t": "T", "th": "T", "d": "T", "l": "L", "s": "S"}
_LEVEL_MAX = {"C": 7, "T": 12, "L": 6, "S": 5}
# "T1", "T2" also name MRI weightings: not a vertebra when one of these follows
_NOT_A_LEVEL_AFTER = r"(?!\s*(?:-\s*)?(?:weighted|w\b|wi\b|image|images|sequence|signal|map|flair|hyper|hypo|post|pre\b|contrast|fs\b|mri|mr\b))"
_LEVEL = r"(th|c|t|d|l|s)\s?-?\s?(\d{1,2})"
_RANGE_RE = re.compile(rf"\b{_LEVEL}\s*(?:-|to|through|until|/)\s*(?:(th|c|t|d|l|s)\s?-?\s?)?(\d{{1,2}})\b{_NOT_A_LEVEL_AFTER}")
_SINGLE_RE = re.compile(rf"\b{_LEVEL}\b{_NOT_A_LEVEL_AFTER}")
# "ribs 8 to 10", "segments 5-8": a run of numbers (vertebral level ranges are rewritten before this)
_NUMBER_RANGE_RE = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s*(?:-|to|through|until|thru)\s*(\d{1,2})(?:st|nd|rd|th)?\b")
_TOKEN_RE = re.compile(r"@[a-z]+:[A-Za-z0-9_]+|[a-z0-9]+|[,;/+&()?.!:]")
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10, "xi": 11, "xii": 12}


@dataclass(frozen=True)
class Language:
    """Grammar words from data/language.yaml, as sets and maps ready for lookup."""

    side_of: dict
    viewer_markers: frozenset
    side_fillers: frozenset
    conjunctions: frozenset
    separators: frozenset
    clause_breaks: frozenset
    negations: frozenset
    lesion_words: frozenset
    variant_words: frozenset
    part_nouns: frozenset
    positional_words: frozenset
    procedure_words: frozenset
    procedure_suffixes: tuple
    locative_prepositions: frozenset
    generic_heads: frozenset
    course_verbs: frozenset
    context_markers: frozenset
    fillers: frozenset
    request_words: frozenset
    spelling: dict
    plurals: dict
    no_singular: frozenset
    numbers: dict
    roman_after: frozenset
    abbreviations: dict


@functools.lru_cache(maxsize=1)
def language() -> Language:
    data = yaml.safe_load(LANGUAGE_FILE.read_text(encoding="utf-8"))
    side_of = {}
    for side, words in data["sides"].items():
        for w in words:
            side_of[str(w)] = side
    s = lambda key: frozenset(str(w) for w in data.get(key, []))  # noqa: E731
    return Language(
        side_of=side_of, viewer_markers=s("viewer_markers"), side_fillers=s("side_fillers"),
        conjunctions=s("conjunctions"), separators=s("separators"), clause_breaks=s("clause_breaks"),
        negations=s("negations"), lesion_words=s("lesion_words"), variant_words=s("variant_words"),
        part_nouns=s("part_nouns"), positional_words=s("positional_words"), procedure_words=s("procedure_words"),
        procedure_suffixes=tuple(data.get("procedure_suffixes", [])), locative_prepositions=s("locative_prepositions"),
        generic_heads=s("generic_heads"), course_verbs=s("course_verbs"), context_markers=s("context_markers"),
        fillers=s("fillers"), request_words=s("request_words"),
        spelling={str(k): str(v) for k, v in data.get("spelling", {}).items()},
        plurals={str(k): str(v) for k, v in data.get("plurals", {}).items()}, no_singular=s("no_singular"),
        numbers={str(k): int(v) for k, v in data.get("numbers", {}).items()}, roman_after=s("roman_after"),
        abbreviations={str(k): str(v) for k, v in data.get("abbreviations", {}).items()},
    )


def fold(text: str) -> str:
    """Lower case ASCII-ish text: accents stripped, dashes and quotes unified."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    text = re.sub(r"[\u2018\u2019\u00b4`]", "'", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.lower()


_BRITISH = [(re.compile(r"^oe(?=[sd])"), "e"), (re.compile(r"haem"), "hem"), (re.compile(r"^caec"), "cec"),
            (re.compile(r"^coel"), "cel"), (re.compile(r"^paed"), "ped"), (re.compile(r"^foet"), "fet"),
            (re.compile(r"aem(?=ia)"), "em"), (re.compile(r"ischaem"), "ischem"), (re.compile(r"our$"), "or")]


def american(word: str, lang: Language) -> str:
    """British spellings folded to the American ones the tree's keys use (oesophagus, haemorrhage)."""
    if word in lang.spelling:
        return lang.spelling[word]
    for pattern, repl in _BRITISH:
        if pattern.search(word) and word not in ("four", "your", "our", "hour", "pour", "tour"):
            word = pattern.sub(repl, word)
    return word


def singular(word: str, lang: Language) -> str:
    if word in lang.plurals:
        return lang.plurals[word]
    if word in lang.no_singular or len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "as", "os", "ys")):
        return word[:-1]
    return word


def _level(prefix: str, number: str, strict: bool = True) -> str | None:
    region = _LEVEL_PREFIX[prefix]
    n = int(number)
    # a single level beyond the column ("T13", "C8") stays a level token, so it is refused as such
    if 1 <= n <= (_LEVEL_MAX[region] if strict else _LEVEL_MAX[region] + 2):
        return f"{region}{n}"
    return None


def _expand_range(match: re.Match) -> str:
    first = _level(match.group(1), match.group(2))
    last_prefix = match.group(3) or match.group(1)
    last = _level(last_prefix, match.group(4))
    if not first or not last or first not in LEVEL_ORDER or last not in LEVEL_ORDER:
        return match.group(0)
    i, j = LEVEL_ORDER.index(first), LEVEL_ORDER.index(last)
    if j < i or j - i > 25:
        return match.group(0)
    # the range marker lets a following "disc" pick the discs between these levels
    return " @range:" + "_".join(LEVEL_ORDER[i:j + 1]) + " "


def _single_level(match: re.Match) -> str:
    level = _level(match.group(1), match.group(2), strict=False)
    return f" @lvl:{level} " if level else match.group(0)


def prepare(text: str, known_ids: frozenset = frozenset()) -> str:
    """Fold text and rewrite abbreviations, raw ids and vertebral levels into marker tokens."""
    lang = language()
    text = fold(text)
    if known_ids:
        text = re.sub(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b",
                      lambda m: f" @id:{m.group(0)} " if m.group(0) in known_ids else m.group(0).replace("_", " "), text)
    for abbr, full in lang.abbreviations.items():
        # a dotted side ("lt.") only before a word: "... for head and neck RT." is radiotherapy
        ahead = r"(?=\s+[a-z])" if full in ("left", "right") else r"(?=[\s,;)]|$)"
        text = re.sub(rf"(?<![a-z0-9]){re.escape(abbr)}{ahead}", f" {full} ", text)
    text = re.sub(r"'s\b", "", text)
    text = text.replace("'", " ")
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # left-sided, skull-stripping
    text = _RANGE_RE.sub(_expand_range, text)
    text = _SINGLE_RE.sub(_single_level, text)
    text = _NUMBER_RANGE_RE.sub(_number_range, text)
    return text


def _number_range(match: re.Match) -> str:
    a, b = int(match.group(1)), int(match.group(2))
    if not 0 < a < b <= 30:
        return match.group(0)
    return " @nums:" + "_".join(str(n) for n in range(a, b + 1)) + " "


def tokenize(text: str, known_ids: frozenset = frozenset()) -> list[str]:
    """Normalised tokens of `text` (see module doc); "the" and hyphens are dropped."""
    lang = language()
    raw = _TOKEN_RE.findall(prepare(text, known_ids))
    out: list[str] = []
    for i, tok in enumerate(raw):
        if tok.startswith("@"):
            out.append(tok)
            continue
        if tok == "the":
            continue
        tok = american(tok, lang)
        if tok in lang.numbers:
            out.append(f"#{lang.numbers[tok]}")
            continue
        if tok.isdigit() and len(tok) <= 2:
            out.append(f"#{int(tok)}")
            continue
        if tok in _ROMAN and i > 0 and raw[i - 1] in lang.roman_after:
            out.append(f"#{_ROMAN[tok]}")
            continue
        out.append(singular(tok, lang))
    return out


def is_word(token: str) -> bool:
    return token[:1].isalpha()
