"""The six categories (``prunelens.categories``): the rules on hand-labelled chains, the annotate stage, the demo format."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from prunelens.categories import (
    DemoAnnotator,
    RuleAnnotator,
    annotate_examples,
    annotate_run,
    evaluate,
    export_demo,
    import_demo,
    load_gold,
)
from prunelens.data import DataError
from prunelens.schema import LABELS

DATA = Path(__file__).parent / "data"


def labels_of(question, reasoning, pieces):
    """Label the given substrings (in order) of ``reasoning`` as if they were tokens."""
    spans, start = [], 0
    for piece in pieces:
        start = reasoning.index(piece, start)
        spans.append((start, start + len(piece)))
        start += len(piece)
    return RuleAnnotator().label_tokens(question, reasoning, spans)


def test_rules_from_categories_md():
    q = "Janet's ducks lay 16 eggs per day. She sells the rest at the market for $2 each."
    r = "Total: she sells 16 - 3 = 13 eggs. So she makes 13 * $2 = $26 at the market. That is 0.25 of it."
    assert labels_of(q, r, ["Total", ":", " she", " sells", " 16", " -", " 3", " =", " eggs", "."]) == [
        "VERBAL_MATH", "FUNCTION", "COREFERENCE", "FUNCTION", "SYMBOLIC_MATH", "SYMBOLIC_MATH",
        "SYMBOLIC_MATH", "SYMBOLIC_MATH", "ENTITY_NAME", "FUNCTION"]
    assert labels_of(q, r, ["So", " $", "2", " market", "0", ".", "25", "."]) == [
        "META_DISCOURSE", "SYMBOLIC_MATH", "SYMBOLIC_MATH", "ENTITY_NAME", "SYMBOLIC_MATH",
        "SYMBOLIC_MATH", "SYMBOLIC_MATH", "FUNCTION"]


def test_subword_tokens_share_their_word_label_and_space_is_grammar():
    q = "Natalia sold clips to 48 of her friends."
    r = "Natalia sold twice\n as many."
    labels = labels_of(q, r, ["N", "atal", "ia", " sold", " tw", "ice", "\n", " as"])
    assert labels[:3] == ["ENTITY_NAME"] * 3
    assert labels[4:6] == ["VERBAL_MATH"] * 2
    assert labels[6] == "FUNCTION"


def test_we_need_is_meta_but_a_persons_need_is_not():
    q = "Ellie needs 10 ml of oil."
    assert labels_of(q, "We need 10 ml.", ["We", " need"]) == ["META_DISCOURSE", "META_DISCOURSE"]
    assert labels_of(q, "Ellie needs 10 ml.", ["Ellie", " needs"]) == ["ENTITY_NAME", "FUNCTION"]


def test_rules_v3_quantities_measures_and_headers():
    q = "Rosa sells scarves at a stall. She earns $100 a week. How many scarves does she sell in a year?"
    r = ("Rosa earns $100 a week, so her monthly pay is $400 because 4 * $100 = $400.\n"
         "Initial amounts:\n1. She sells 5 scarves each at the stall.\n"
         "The total cost of the scarves is $50, but 5 new scarves cost $45 and are worth $60.\n"
         "This week the number of scarves is 3 and $3 is gone.")
    assert labels_of(q, r, ["Rosa", " a", " week", " monthly", " pay", " because"]) == [
        "ENTITY_NAME", "VERBAL_MATH", "ENTITY_NAME", "VERBAL_MATH", "ENTITY_NAME", "FUNCTION"]
    assert labels_of(q, r, ["Initial", " amounts", ":", "1", " each"]) == [
        "META_DISCOURSE", "META_DISCOURSE", "FUNCTION", "SYMBOLIC_MATH", "VERBAL_MATH"]
    assert labels_of(q, r, [" cost", " new", " cost", " worth"]) == [
        "ENTITY_NAME", "ENTITY_NAME", "FUNCTION", "FUNCTION"]
    assert labels_of(q, r, ["This", " number", " gone"]) == ["FUNCTION", "VERBAL_MATH", "VERBAL_MATH"]
    assert labels_of(q, "She rolls an odd number twice a day.", [" odd", " number", " a"]) == [
        "ENTITY_NAME", "ENTITY_NAME", "VERBAL_MATH"]
    assert RuleAnnotator.name == "rules-v3"


@pytest.mark.parametrize("name,accuracy,macro_f1", [("categories_gold", 0.98, 0.97),
                                                    ("categories_heldout", 0.96, 0.95),
                                                    ("categories_blind", 0.97, 0.95)])
def test_accuracy_floors_on_hand_labelled_gold(name, accuracy, macro_f1):
    gold = load_gold(DATA / f"{name}.jsonl")
    assert len(gold) >= 12 and all(label in LABELS for row in gold for *_, label in row["words"])
    result = evaluate(RuleAnnotator(), gold)
    assert result["accuracy"] >= accuracy and result["macro_f1"] >= macro_f1


def test_gold_set_covers_both_sources_and_every_label():
    gold = load_gold(DATA / "categories_gold.jsonl")
    assert len(gold) >= 25
    assert {row["id"].rsplit("-", 1)[0].rstrip("-0123456789") for row in gold} >= {"gsm8k", "gsm-symbolic"}
    assert {label for row in gold for *_, label in row["words"]} == set(LABELS)
    for row in gold:  # every non-space character of the chain is in exactly one labelled word
        covered = "".join(row["reasoning"][s:e] for s, e, _, _ in row["words"])
        assert covered == "".join(row["reasoning"].split())


@pytest.fixture(scope="module")
def pruned_run(tiny_run):
    return tiny_run("truncate", chains=3)


def test_annotate_run_and_demo_round_trip(pruned_run, tmp_path):
    path = annotate_run(pruned_run)
    cats = pd.read_parquet(path)
    tokens = pd.read_parquet(pruned_run / "tokens.parquet")
    assert list(cats.columns) == ["example_id", "position", "token_text", "char_start", "char_end", "category", "annotator"]
    assert set(cats.annotator) == {RuleAnnotator.name}
    assert cats[["example_id", "position"]].equals(tokens[["example_id", "position"]])
    assert set(cats.category) <= set(LABELS) and cats.category.nunique() >= 3
    demo = export_demo(pruned_run, tmp_path / "demo.jsonl", justification="rules")
    back = import_demo(demo)
    joined = tokens.merge(cats, on=["example_id", "position", "token_text"])
    assert list(back.example_id) == list(joined.example_id)
    assert list(back.position) == list(joined.position)
    assert list(back.token_text) == list(joined.token_text)
    assert list(back.category) == list(joined.category)
    assert list(back.deleted_step) == list(joined.deleted_step)
    assert set(back.justification) == {"rules"}


def test_annotate_raw_data_tokenises_like_prune(tiny_model, short_chains, pruned_run, tmp_path):
    path = annotate_examples(tiny_model.tokenizer, short_chains[:3], tmp_path)
    raw = pd.read_parquet(path)
    assert raw.equals(pd.read_parquet(annotate_run(pruned_run)))


def test_a_plugged_in_annotator_replaces_the_rules(pruned_run, tmp_path):
    class Shouty:
        name = "shouty"

        def label_tokens(self, question, reasoning, spans):
            return ["META_DISCOURSE"] * len(spans)

    cats = pd.read_parquet(annotate_run(pruned_run, Shouty()))
    assert set(cats.category) == {"META_DISCOURSE"} and set(cats.annotator) == {"shouty"}

    class Broken(Shouty):
        def label_tokens(self, question, reasoning, spans):
            return ["NOUN"] * len(spans)

    with pytest.raises(ValueError, match="unknown labels \\['NOUN'\\]"):
        annotate_run(pruned_run, Broken())


def test_cli_imports_labels_made_elsewhere_into_a_run(pruned_run, tmp_path):
    """Export the demo format, relabel one chain as an outside annotator would, import it back."""
    import json

    from prunelens.cli import main

    run = tmp_path / "run"
    shutil.copytree(pruned_run, run)
    demo = tmp_path / "demo.jsonl"
    assert main(["annotate", str(run), "--export-demo", str(demo)]) == 0
    rules = pd.read_parquet(run / "categories.parquet")
    chains = [json.loads(line) for line in demo.read_text().splitlines()]
    for token in chains[0]["reason_tokens_json"]:
        token["category"] = "META_DISCOURSE"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(chain) + "\n" for chain in reversed(chains)))  # order must not matter
    assert main(["annotate", str(run), "--import-demo", str(edited)]) == 0
    imported = pd.read_parquet(run / "categories.parquet")
    assert list(imported.columns) == list(rules.columns)
    first = imported.example_id == chains[0]["id"]
    assert set(imported[first].category) == {"META_DISCOURSE"}
    assert imported[~first].drop(columns="annotator").equals(rules[~first].drop(columns="annotator"))
    assert set(imported.annotator) == {"demo:edited.jsonl"}

    chains[1]["reason_tokens_json"][2]["token_text"] += "x"
    edited.write_text("".join(json.dumps(chain) + "\n" for chain in chains))
    with pytest.raises(DataError, match=f"chain {chains[1]['id']}: tokens differ from the run's at position 2"):
        annotate_run(run, DemoAnnotator(edited))
    edited.write_text(json.dumps(chains[0]) + "\n")
    with pytest.raises(DataError, match="edited.jsonl: no chain with the question"):
        annotate_run(run, DemoAnnotator(edited))
    assert pd.read_parquet(run / "categories.parquet").equals(imported)  # a failed import writes nothing


def test_import_demo_names_bad_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "reason_tokens_json": [{"token_position": 0}]}\n')
    with pytest.raises(DataError, match="bad.jsonl, line 1: not in the demo format"):
        import_demo(path)


def test_categories_record_their_annotator(full_run):
    assert set(pd.read_parquet(full_run["greedy"] / "categories.parquet").annotator) == {"rules-v3"}
