"""The rules of the tagger: docs/categories.md as lexicons (``lexicon``) and context rules.

The text is cut into units: numbers (``1,200``, ``0.25``, ``3/4``), calculator annotations, words
(``Let's``), single punctuation or operator characters, and white space. Each unit gets a label by
the rules of docs/categories.md, tried in its tie-break order, then a second pass looks at the labels
around a word (``a`` as "per" after a quantity, adjectives before a noun of the problem, section
headers); a token takes the label of the word it belongs to, and a token made only of punctuation or
white space takes its own unit's label. The question supplies the problem's entities (its names and
content nouns).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..schema import LABELS
from .lexicon import (NUMBER_WORDS, OPERATION_WORDS, COUNT_NOUNS, PRONOUNS, META_WORDS, SENTENCE_ONLY_META,
                      NEED, REASONER, SUBJECTS, VARIABLES, SELECTORS, MODALS, COPULAS, IDIOM_NOUNS, STOP,
                      DESCRIPTIVE, ADJECTIVES, DETERMINERS, VERBS, UNITS, TIMES, PRICED, NOUN_MARKERS,
                      DEMONSTRATIVE_AFTER, DEMONSTRATIVES, OPERATOR_CHARS, CURRENCY)

SYM, VERB, ENT, COREF, META, FUNC = LABELS

UNIT = re.compile(r"<<[^<>]*>>|(?:\d+|(?<![\w.])\.(?=\d))(?:[.,/]?\d+)*|[A-Za-z]+(?:['’][A-Za-z]+)*|\s+|.", re.S)
HEADER = re.compile(r"^[ \t]*(?:[-*•#]+|\d+[.)])?[ \t]*([A-Za-z][\w '’-]*):[*_ \t]*$", re.M)  # "1. Totals:"


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    text: str
    kind: str  # calc, number, word, space, char


def units(text: str) -> list[Unit]:
    out = []
    for m in UNIT.finditer(text):
        s = m.group()
        kind = ("calc" if s.startswith("<<") and len(s) > 2 else "number" if s[0].isdigit() or s[0] == "." and len(s) > 1
                else "word" if s[0].isalpha() else "space" if s.isspace() else "char")
        out.append(Unit(m.start(), m.end(), s, kind))
    return out


def _stem(word: str) -> str:
    w = word.lower().replace("’", "'")
    for suffix in ("ies", "es", "s"):
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def _lexical(word: str) -> bool:
    """Is ``word`` (lower case) in a lexicon that is not the entity one?"""
    return any(word in lexicon for lexicon in (STOP, VERBS, PRONOUNS, META_WORDS, NUMBER_WORDS,
                                                 OPERATION_WORDS, ADJECTIVES))


def _present(word: str) -> bool:
    """Is ``word`` a verb in the present (``play``, ``plays``), not a participle that can qualify a noun (``sold``)?"""
    return word in VERBS and (word.endswith("s") or word + "s" in VERBS or word + "es" in VERBS)


def _base(word: str) -> str:
    """``word`` without a possessive ending."""
    return re.sub(r"['’]s?$", "", word)


def question_names(question: str) -> set[str]:
    """Capitalised words of the question that no lexicon knows (people, places, months), and those
    capitalised inside a sentence although a lexicon knows them (``does Will have``)."""
    solid = [u for u in units(question) if u.kind != "space"]
    return {_base(u.text) for k, u in enumerate(solid)
            if u.kind == "word" and u.text[0].isupper()
            and (not _lexical(_base(u.text).lower()) or k and solid[k - 1].kind == "word" and u.text.isalpha()
                 and len(u.text) > 1)}


def question_entities(question: str) -> set[str]:
    """Stems of the question's content words: names and nouns (not function words, verbs, lexicon).

    A word after ``to`` is taken for a verb; one ending in -ed, -ing or -ly counts only after a
    determiner or ``of`` (``of icing``, ``some jelly beans``).
    """
    found = set()
    words = [u for u in units(question) if u.kind == "word"]
    for k, unit in enumerate(words):
        w = unit.text.lower()
        prev = words[k - 1].text.lower() if k else ""
        if _lexical(w) or len(w) < 3 or prev == "to":
            continue
        if w.endswith(("ed", "ing", "ly")) and len(w) > 4 and prev not in DETERMINERS | {"enough", "some"}:
            continue
        found.add(_stem(_base(w)))
    return found


class RuleAnnotator:
    """The default annotator: docs/categories.md as lexicons and context rules, nothing downloaded."""

    name = "rules-v3"  # bumped whenever the rules change, so a run records which rules labelled it

    def label_units(self, question: str, reasoning: str) -> list[tuple[Unit, str]]:
        """Every unit of ``reasoning`` with its category."""
        items = units(reasoning)
        entities = question_entities(question)
        names = question_names(question)
        solid = [i for i, u in enumerate(items) if u.kind != "space"]
        where = {i: k for k, i in enumerate(solid)}

        def at(i: int, step: int) -> int | None:
            """Index of the unit ``step`` units from ``items[i]``, not counting white space."""
            k = where[i] + step
            return solid[k] if 0 <= k < len(solid) else None

        def neighbour(i: int, step: int) -> Unit | None:
            j = at(i, step)
            return None if j is None else items[j]

        def clause_start(i: int) -> bool:
            prev = neighbour(i, -1)
            if prev is None or prev.text in {".", ":", "!", "?", "\n", "•", "-", "*", "("}:
                return True
            between = reasoning[prev.end: items[i].start]
            return "\n" in between or (prev.kind == "number" and reasoning[prev.end: prev.end + 1] == ".")

        def is_math(u: Unit | None) -> bool:
            return u is not None and (u.kind in ("number", "calc") or u.text in OPERATOR_CHARS or u.text in VARIABLES
                                      or u.text in CURRENCY or u.text in {"(", ")", "%"})

        labels: list[str] = []
        opened: list[str] = []  # labels of the brackets not closed yet
        for i, u in enumerate(items):
            if u.kind == "space":
                labels.append(FUNC)
                continue
            if u.kind in ("number", "calc") or u.text in OPERATOR_CHARS:
                labels.append(SYM)
                continue
            if u.kind == "char":
                prev, nxt = neighbour(i, -1), neighbour(i, 1)
                if u.text in CURRENCY:
                    labels.append(SYM if nxt is not None and nxt.kind == "number" else FUNC)
                elif u.text == "%":
                    labels.append(SYM if prev is not None and prev.kind == "number" else FUNC)
                elif u.text == "/":  # division, also as "per" in "$195/day"
                    labels.append(SYM)
                elif u.text in "-−–":  # minus between math, or a sign; else a hyphen, a dash or a bullet
                    bullet = not reasoning[reasoning.rfind("\n", 0, u.start) + 1: u.start].strip()
                    unary = nxt is not None and nxt.kind == "number" and (prev is None or prev.text in "=(")
                    spaced = reasoning[u.start - 1: u.start] == " " and reasoning[u.end: u.end + 1] == " "
                    labels.append(FUNC if bullet and reasoning[u.end: u.end + 1] == " " else
                                  SYM if (is_math(prev) and is_math(nxt)) or unary
                                  or (spaced and (is_math(prev) or is_math(nxt))) else FUNC)
                elif u.text == "(":
                    opened.append(SYM if is_math(nxt) or (prev is not None and prev.text in OPERATOR_CHARS) else FUNC)
                    labels.append(opened[-1])
                elif u.text == ")":  # closes an expression opened as one: "(3 feet / 1 yards)"
                    match = opened.pop() if opened else FUNC
                    labels.append(SYM if is_math(prev) or match == SYM else FUNC)
                else:
                    labels.append(FUNC)
                continue
            labels.append(self._word_label(u, i, items, neighbour, clause_start, is_math, entities, names))
        self._relabel(reasoning, items, labels, solid, at, clause_start)
        return list(zip(items, labels))

    @staticmethod
    def _relabel(reasoning, items, labels, solid, at, clause_start) -> None:
        """The rules that look at the labels of neighbouring words; ``labels`` is changed in place."""

        def text(j: int | None) -> str:
            return "" if j is None else items[j].text.lower()

        def quantity(j: int | None) -> bool:
            """Does ``items[j]`` end a quantity: ``$100``, ``twice``, ``12 letters``?"""
            k = None if j is None else at(j, -1)
            return j is not None and (labels[j] in (SYM, VERB)
                                      or labels[j] == ENT and k is not None and labels[k] in (SYM, VERB))

        def hyphen(j: int | None) -> bool:
            """Is ``items[j]`` a hyphen joining two words (``long-sleeved``)?"""
            before, after = (None, None) if j is None else (at(j, -1), at(j, 1))
            return (before is not None and after is not None and items[j].text == "-"
                    and items[before].end == items[j].start and items[j].end == items[after].start)

        def adjective(i: int) -> bool:
            """Is the word ``items[i]``, right before a noun, an adjective qualifying it?"""
            w, prev = text(i), at(i, -1)
            after_quantity = prev is not None and (items[prev].kind == "number" or text(prev) == "total")
            return (hyphen(at(i, 1)) or hyphen(prev) or w in DESCRIPTIVE  # "long-sleeved", "new boys"
                    or after_quantity and not (w in STOP | META_WORDS or _present(w))  # "27 sold boxes"
                    or text(prev) in DETERMINERS and w.endswith("ed"))  # "the colored pencils"

        for i in solid:
            prev, nxt, w = at(i, -1), at(i, 1), text(i)
            if w == "rest":  # "the rest" points back to an amount: both words are coreference
                labels[i] = COREF
                if text(prev) == "the":
                    labels[prev] = COREF
            # "a" as "per" after a quantity: "$100 a week", "twice a day", "12 letters a week"
            elif w in ("a", "an") and quantity(prev) and not clause_start(i) and (
                    text(nxt) in TIMES or text(nxt) in UNITS and _stem(text(nxt)) == text(nxt)):
                labels[i] = VERB
        # an adjective picks out the noun of the problem it qualifies (right to left: "long-sleeved jerseys")
        for i in reversed(solid):
            nxt = at(i, 1)
            noun = at(nxt, 1) if hyphen(nxt) else nxt
            if items[i].kind == "word" and labels[i] == FUNC and noun is not None and items[noun].kind == "word" \
                    and labels[noun] == ENT and adjective(i):
                labels[i] = ENT
        # a section header on a line of its own ("Initial amounts:") organises the reasoning
        for m in HEADER.finditer(reasoning):
            words = m.group(1).lower().split()
            if len(words) <= 4 and not COPULAS & set(words):
                for i in solid:
                    if m.start(1) <= items[i].start < m.end(1) and items[i].kind == "word" and labels[i] in (ENT, FUNC):
                        labels[i] = META

    def _word_label(self, u, i, items, neighbour, clause_start, is_math, entities, names) -> str:
        w = u.text.lower().replace("’", "'")
        prev, nxt = neighbour(i, -1), neighbour(i, 1)
        before = prev.text.lower() if prev is not None else ""
        after = nxt.text.lower() if nxt is not None else ""
        if (w in VARIABLES or len(w) == 1 and u.text.isupper() and w not in ("a", "i")) \
                and (is_math(prev) or is_math(nxt) or before == "let" or after == "be"):  # "Let x be", "y = 2"
            return SYM
        if w in COUNT_NOUNS:
            return VERB if after == "of" else ENT
        if (w == "gone" and before in COPULAS) \
                or (w == "all" and before == "in" and after not in DETERMINERS):  # "in all", not "in all of"
            return VERB
        if w in NUMBER_WORDS or w in OPERATION_WORDS:
            return ENT if w == "square" and after in UNITS else VERB  # "square feet" is a unit
        if w in PRONOUNS:
            if (w == "that" and before in DEMONSTRATIVE_AFTER) or (w in DEMONSTRATIVES and _stem(after) in TIMES):
                return FUNC  # "that means", "this week"
            return COREF
        if w in NEED:
            return META if before in REASONER else FUNC
        if w in META_WORDS:
            if w in SENTENCE_ONLY_META and (not clause_start(i) or after == "="):  # "Now = 7 - 3" names a time
                return FUNC
            return META
        if w == "to" and after in META_WORDS - SENTENCE_ONLY_META:
            return META
        if w == "out" and before in {"figure", "find", "work"}:
            return META
        if w in IDIOM_NOUNS and before in {"the", "a"} \
                and (neighbour(i, -2) or prev).text.lower() in {"at", "in", "by"}:  # "at the end of", "in a row"
            return FUNC
        if w in PRICED:  # "the total cost", "the room's worth"; "are worth", "$400 worth of" are not
            noun = before in NOUN_MARKERS | ADJECTIVES or before.endswith(("'s", "’s"))
            return ENT if noun else FUNC
        base = _base(u.text)
        stem = _stem(base)
        if w in SELECTORS and nxt is not None and (_stem(nxt.text) in UNITS or after in UNITS):
            return ENT
        if base in names or (u.text[0].isupper() and not clause_start(i) and not _lexical(base.lower())):
            return ENT
        if prev is not None and (before == "/" and w not in STOP or prev.kind == "number" and w in VERBS
                                 and w.endswith("s")):  # the unit of a rate, "$48/share"; "16 shares"
            return ENT
        # a verb after a modal or a subject: "can harvest", "she finds", "Ann slew 5"
        if _lexical(w) or _lexical(base.lower()) or before in MODALS | SUBJECTS \
                or (prev is not None and prev.text in names and is_math(nxt)):
            return FUNC
        if stem in entities or base.lower()[:-1] in entities or stem in UNITS or base.lower() in UNITS:
            return ENT  # "brownies" for the question's "brownie"
        # a noun the question did not use, right after a determiner, a number or an owner ("Ann's brother")
        owner = before.endswith(("'s", "’s")) and _base(before) not in PRONOUNS | STOP | META_WORDS
        if prev is not None and (before in DETERMINERS or prev.kind == "number" or owner) \
                and not w.endswith(("ly", "ed", "ing")):
            return ENT
        return FUNC

    def label_tokens(self, question: str, reasoning: str, spans: Sequence[tuple[int, int]]) -> list[str]:
        """One label per token span: its word's label; punctuation or white space on its own."""
        labelled = self.label_units(question, reasoning)
        by_char = [FUNC] * len(reasoning)
        solid = [False] * len(reasoning)
        for unit, label in labelled:
            for c in range(unit.start, unit.end):
                by_char[c] = label
                solid[c] = unit.kind in ("word", "number", "calc")
        out = []
        for start, end in spans:
            chars = range(start, min(end, len(reasoning)))
            word = [c for c in chars if solid[c]]
            content = word or [c for c in chars if not reasoning[c].isspace()]
            out.append(by_char[content[0]] if content else FUNC)
        return out
