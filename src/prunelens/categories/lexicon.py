"""The tagger's word lists, read from ``lexicon.json`` (data, not code): one frozen set of lower-case
words per lexicon, and two sets of characters; each list's note in the file says what it is for."""

from __future__ import annotations

import json
from importlib.resources import files


def _read() -> dict[str, frozenset[str]]:
    data = json.loads((files("prunelens.categories") / "lexicon.json").read_text(encoding="utf-8"))
    words = {name: frozenset(" ".join(entry["words"]).split()) for name, entry in data.items() if "words" in entry}
    for name, entry in data.items():
        for other in entry.get("includes", []):
            words[name] |= words[other]
    return {**words, **{name: frozenset(entry["chars"]) for name, entry in data.items() if "chars" in entry}}


_LISTS = _read()
NUMBER_WORDS = _LISTS["number_words"]
OPERATION_WORDS = _LISTS["operation_words"]
COUNT_NOUNS = _LISTS["count_nouns"]
PRONOUNS = _LISTS["pronouns"]
META_WORDS = _LISTS["meta_words"]
SENTENCE_ONLY_META = _LISTS["sentence_only_meta"]
NEED = _LISTS["need"]
REASONER = _LISTS["reasoner"]
SUBJECTS = _LISTS["subjects"]
VARIABLES = _LISTS["variables"]
SELECTORS = _LISTS["selectors"]
MODALS = _LISTS["modals"]
COPULAS = _LISTS["copulas"]
IDIOM_NOUNS = _LISTS["idiom_nouns"]
STOP = _LISTS["stop"]
DESCRIPTIVE = _LISTS["descriptive"]
ADJECTIVES = _LISTS["adjectives"]
DETERMINERS = _LISTS["determiners"]
VERBS = _LISTS["verbs"]
UNITS = _LISTS["units"]
TIMES = _LISTS["times"]
PRICED = _LISTS["priced"]
NOUN_MARKERS = _LISTS["noun_markers"]
DEMONSTRATIVE_AFTER = _LISTS["demonstrative_after"]
DEMONSTRATIVES = _LISTS["demonstratives"]
OPERATOR_CHARS = _LISTS["operator_chars"]
CURRENCY = _LISTS["currency"]
