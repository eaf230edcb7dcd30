"""Six functional categories for reasoning tokens (``../shared/CATEGORIES.md``), offline and rule-based.

The text is cut into units: numbers (``1,200``, ``0.25``, ``3/4``), calculator annotations, words
(``Let's``), single punctuation or operator characters, and white space. Each unit gets a label by
the rules of CATEGORIES.md, tried in its tie-break order, then a second pass looks at the labels
around a word (``a`` as "per" after a quantity, adjectives before a noun of the problem, section
headers); a token takes the label of the word it belongs to, and a token made only of punctuation or
white space takes its own unit's label. The question supplies the problem's entities (its names and
content nouns).

Annotators are pluggable: anything with ``name`` and ``label_tokens(question, reasoning, spans)``
(one label per token span) can replace ``RuleAnnotator``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

LABELS = ("SYMBOLIC_MATH", "VERBAL_MATH", "ENTITY_NAME", "COREFERENCE", "META_DISCOURSE", "FUNCTION")
DISPLAY = {"SYMBOLIC_MATH": "SymbMath", "VERBAL_MATH": "VerbalMath", "ENTITY_NAME": "EntName",
           "COREFERENCE": "CoRef", "META_DISCOURSE": "MetaDisc", "FUNCTION": "Grammar"}
COLOURS = {"SYMBOLIC_MATH": (98, 160, 202), "VERBAL_MATH": (180, 148, 209), "ENTITY_NAME": (107, 188, 107),
           "COREFERENCE": (174, 136, 129), "META_DISCOURSE": (226, 104, 104), "FUNCTION": (255, 165, 85)}
SYM, VERB, ENT, COREF, META, FUNC = LABELS


def colour(label: str) -> str:
    """The category's colour as ``#rrggbb``."""
    return "#%02x%02x%02x" % COLOURS[label]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NUMBER_WORDS = _words("""zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred hundreds thousand thousands million millions billion half halves halved twice double
    doubled doubles triple tripled triples thrice quadruple dozen dozens quarter quarters third thirds
    fourth fourths fifth fifths sixth tenth tenths once""")
OPERATION_WORDS = _words("""times plus minus multiply multiplied multiplying multiplication multiplies
    divide divided dividing division divides sum sums summed total totals totaling totalling totaled
    difference product remainder remaining remains left more fewer less least most each per every
    percent percentage percentages average averages rate rates ratio ratios increase increased increases
    increasing decrease decreased decreases decreasing add added adding addition adds subtract subtracted
    subtracting subtraction subtracts altogether combined combine combines combining equal equals equaled
    squared square cubed fraction fractions proportion twice extra leftover remain remained greater greatest
    chance chances probability probabilities discount discounts reduce reduces reduced reducing reduction
    perimeter hourly daily weekly monthly yearly annually""")
COUNT_NOUNS = _words("number numbers")  # a quantity before "of", else a thing: "an odd number" on a die
PRONOUNS = _words("""she he they it her his their them its him hers theirs himself herself themselves
    itself this that these those which who whom whose everyone everybody everything""")
META_WORDS = _words("""step steps so therefore thus hence let let's lets we i us our me my
    find finding calculate calculating calculation calculations compute computing solve solving
    solution answer answers question know means maybe probably think wait check checking verify now also
    next then finally first firstly second secondly lastly determine figure problem result results
    given recall note similarly likewise additionally furthermore moreover however""")
SENTENCE_ONLY_META = _words("first second next also then given now")  # markers only at the start of a clause
NEED = _words("need needs needed")  # the reasoner's need (META) or a person's in the problem (FUNCTION)
REASONER = _words("we i you let's us")
SUBJECTS = _words("he she they we i you it")  # the word after a subject is its verb: "she finds"
VARIABLES = _words("x y z")
SELECTORS = _words("last next previous following first")  # "last week": picks out the entity
MODALS = _words("can could will would shall should may might must")  # the word after one is a verb
COPULAS = _words("is are was were be been being")
IDIOM_NOUNS = _words("end beginning middle row")  # no entity in "at the end of", "in a row"
STOP = _words("""a an the of for and or but nor to in on at by with from into onto over under about
    as than is are was were be been being am has have had do does did doing can could will would shall
    should may might must not no yes if when while because after before during until since up down out
    off how what where why there here all some any many much few other another such own same very too
    just only again still even also both either neither each every per its it's into through between
    among against without within along across around behind beyond upon toward towards whether back
    away together yet already ever never always often once really well now below above right""")
DESCRIPTIVE = _words("""new old big small large little long short tall high low young fresh early late
    original regular special""")  # before a noun of the problem, they pick it out: "5 new boys"
ADJECTIVES = DESCRIPTIVE | _words("""able different good bad full whole last final initial same own certain
    several enough available current normal usual entire free empty possible sure total""")
DETERMINERS = _words("""a an the each every per of his her their its my our your some any this that
    these those another which total many both all several few""")
VERBS = _words("""sell sells sold selling buy buys bought buying make makes made making bake bakes baked
    baking take takes took taken taking give gives gave given giving get gets got getting pay pays paid
    paying spend spends spent spending cost costs costing earn earns earned earning save saves saved
    saving eat eats ate eaten eating read reads reading go goes went gone going come comes came coming
    use uses used using want wants wanted run runs ran running walk walks walked walking work works
    worked working drive drives drove driving plan plans planned decide decides decided collect collects
    collected receive receives received keep keeps kept put puts putting lose loses lost losing win wins
    won winning grow grows grew grown growing fill fills filled charge charges charged cut cuts place
    places placed pick picks picked leave leaves leaving hold holds held fit fits need wants like likes
    liked see sees saw seen say says said tell tells told ask asks asked share shares shared split
    splits order orders ordered rent rents rented hire hires hired build builds built bring brings
    brought send sends sent write writes wrote written feed feeds fed catch catches caught found
    found learn learns learned play plays played sleep sleeps slept start starts started finish finishes
    finished buying sold lay lays laid produce produces produced contain contains contained serve
    serves served consist consists consisted weigh weighs weighed measure measures measured travel
    travels traveled travelled practice practices practiced get become becomes became buy repair
    repairs repaired donate donates donated receive join joins joined joining represent represents
    represented representing born can't doesn't don't isn't won't""")
UNITS = _words("""dollar dollars cent cents hour hours minute minutes second seconds day days week weeks
    month months year years mile miles pound pounds kilogram kilograms kg gram grams meter meters metre
    metres feet foot inch inches yard yards liter liters litre litres gallon gallons ounce ounces cup cups
    piece pieces item items people person page pages point points mph km cm mm lb lbs oz hr hrs min mins
    price prices length lengths width widths height heights weight weights value revenue income profit
    profits earnings savings salary wage wages budget""")
TIMES = _words("second minute hour day night week weekend month year morning afternoon evening")
PRICED = _words("cost costs worth charge charges pay")  # measures after a determiner ("the total cost"), else verbs
NOUN_MARKERS = _words("the a an total its his her their our your whose hourly daily weekly monthly yearly")
OPERATOR_CHARS = set("+*×÷=<>^")
CURRENCY = set("$€£¥")
DEMONSTRATIVE_AFTER = _words("means mean so such know knew shows show say says said think thought than")
DEMONSTRATIVES = _words("this that these those")

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
    """The default annotator: CATEGORIES.md as lexicons and context rules, nothing downloaded."""

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


class Annotator(Protocol):
    name: str

    def label_tokens(self, question: str, reasoning: str, spans: Sequence[tuple[int, int]]) -> list[str]: ...


def evaluate(annotator: Annotator, gold: Sequence[dict]) -> dict:
    """Word-level accuracy, per-label precision/recall/F1, macro-F1 and confusion matrix on ``gold``.

    ``gold`` rows hold ``question``, ``reasoning`` and ``words`` = ``[start, end, text, label]``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    truth, guess = [], []
    for row in gold:
        spans = [(start, end) for start, end, _, _ in row["words"]]
        guess += annotator.label_tokens(row["question"], row["reasoning"], spans)
        truth += [label for _, _, _, label in row["words"]]
    p, r, f, support = precision_recall_fscore_support(truth, guess, labels=list(LABELS), zero_division=0)
    return {
        "words": len(truth), "accuracy": accuracy_score(truth, guess),
        "macro_f1": f1_score(truth, guess, labels=list(LABELS), average="macro", zero_division=0),
        "per_label": {label: {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(support[i])}
                      for i, label in enumerate(LABELS)},
        "confusion": {"labels": list(LABELS), "matrix": confusion_matrix(truth, guess, labels=list(LABELS)).tolist()},
    }


def load_gold(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def categories_table(examples: pd.DataFrame, tokens: pd.DataFrame, annotator: Annotator | None = None) -> pd.DataFrame:
    """``example_id, position, token_text, char_start, char_end, category, annotator`` for every token."""
    annotator = annotator or RuleAnnotator()
    frames = []
    for example_id, rows in tokens.groupby("example_id", sort=False):
        ex = examples.loc[examples.example_id == example_id].iloc[0]
        spans = list(zip(rows.char_start, rows.char_end))
        labels = annotator.label_tokens(ex.question, ex.reasoning, spans)
        bad = sorted(set(labels) - set(LABELS))
        if bad:
            raise ValueError(f"annotator {annotator.name!r} gave unknown labels {bad} for {example_id}")
        frames.append(rows[["example_id", "position", "token_text", "char_start", "char_end"]]
                      .assign(category=labels, annotator=annotator.name))
    return pd.concat(frames, ignore_index=True)


def annotate_run(run: str | Path, annotator: Annotator | None = None) -> Path:
    """Write ``RUN/categories.parquet`` for a pruned run."""
    from .schema import CATEGORIES, EXAMPLES, TOKENS, read_table
    from .store import write_table

    table = categories_table(read_table(run, EXAMPLES), read_table(run, TOKENS), annotator)
    return write_table(table, Path(run) / f"{CATEGORIES}.parquet")


def annotate_examples(model, examples, out: str | Path, annotator: Annotator | None = None) -> Path:
    """Write ``OUT/categories.parquet`` for chains not pruned yet, tokenised exactly as ``prune`` does."""
    from .layout import render
    from .schema import CATEGORIES
    from .store import write_table

    ex_rows, tok_rows = [], []
    for example in examples:
        layout = render(example, model.tokenizer)
        ex_rows.append({"example_id": example.id, "question": example.question, "reasoning": example.reasoning})
        for position, (start, end) in enumerate(layout.spans):
            tok_rows.append({"example_id": example.id, "position": position,
                             "token_text": example.reasoning[start:end], "char_start": start, "char_end": end})
    table = categories_table(pd.DataFrame(ex_rows), pd.DataFrame(tok_rows), annotator)
    return write_table(table, Path(out) / f"{CATEGORIES}.parquet")


def export_demo(run: str | Path, path: str | Path, justification: str = "") -> Path:
    """Write the published demo format: one JSON object per example with ``reason_tokens_json``."""
    from .schema import CATEGORIES, EXAMPLES, KEYS, TOKENS, read_table
    from .store import write_text

    examples = read_table(run, EXAMPLES)
    merged = read_table(run, TOKENS).merge(read_table(run, CATEGORIES)[[*KEYS, "category"]], on=list(KEYS))
    lines = []
    for _, ex in examples.iterrows():
        rows = merged[merged.example_id == ex.example_id]
        tokens = [{"token_position": int(r.position), "token_text": r.token_text,
                   "deleted_step": None if pd.isna(r.deleted_step) else int(r.deleted_step),
                   "category": r.category, "justification": justification} for r in rows.itertuples()]
        lines.append(json.dumps({"id": ex.example_id, "question": ex.question,
                                 "reason_tokens_json": tokens}, ensure_ascii=False))
    return write_text("\n".join(lines) + "\n", Path(path))


def import_demo(path: str | Path) -> pd.DataFrame:
    """Read the demo format into a token table (``example_id`` is ``id`` or the line number)."""
    from .data import DataError

    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            tokens = obj["reason_tokens_json"]
            if isinstance(tokens, str):
                tokens = json.loads(tokens)
            for t in tokens:
                rows.append({"example_id": str(obj.get("id", lineno)), "question": obj["question"],
                             "position": int(t["token_position"]), "token_text": t["token_text"],
                             "deleted_step": t.get("deleted_step"), "category": t["category"],
                             "justification": t.get("justification", "")})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}, line {lineno}: not in the demo format ({type(err).__name__}: {err})") from None
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["deleted_step"] = frame["deleted_step"].astype("Int64")
    return frame


class DemoAnnotator:
    """Labels made elsewhere (an LLM, a person), read from a demo-format file.

    Each chain is found by its question and must be tokenised exactly as the run is: the token
    texts of the file and of the run are compared, and any difference is a one-line error.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"demo:{self.path.name}"
        self._chains: dict[str, tuple[str, list[str], list[str]]] | None = None

    def _lookup(self, question: str) -> tuple[str, list[str], list[str]]:
        from .data import DataError

        if self._chains is None:
            table = import_demo(self.path).sort_values(["example_id", "position"], kind="stable")
            self._chains = {q: (str(rows.example_id.iloc[0]), list(rows.token_text), list(rows.category))
                            for q, rows in table.groupby("question", sort=False)}
        if question not in self._chains:
            raise DataError(f"{self.path}: no chain with the question {question[:60]!r}")
        return self._chains[question]

    def label_tokens(self, question: str, reasoning: str, spans: Sequence[tuple[int, int]]) -> list[str]:
        from .data import DataError

        example_id, texts, labels = self._lookup(question)
        ours = [reasoning[start:end] for start, end in spans]
        if ours != texts:
            k = next((i for i, (a, b) in enumerate(zip(ours, texts)) if a != b), min(len(ours), len(texts)))
            raise DataError(f"{self.path}, chain {example_id}: tokens differ from the run's at position {k} "
                            f"({len(texts)} tokens in the file, {len(ours)} in the run): another tokenizer?")
        return labels
