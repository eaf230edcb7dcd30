"""Loading examples (``prunelens.data``): sources, bad lines named by file and line, problems that are the same problem."""

import json

import pytest

from prunelens.data import DataError, Example, drop_twins, load_examples, problem_key


def test_gsm_symbolic_is_generated_offline_and_seeded():
    a = load_examples("gsm-symbolic", limit=5, seed=3)
    b = load_examples("gsm-symbolic", limit=5, seed=3)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert len({e.id for e in a}) == 5
    for e in a:
        assert e.question and e.reasoning and e.answer
        assert "####" not in e.reasoning and e.answer.strip() == e.answer
    assert load_examples("gsm-symbolic", limit=5, seed=4)[0].question != a[0].question


def test_gsm_symbolic_templates_pick_problems_of_the_plain_stream():
    """``templates=`` keeps the plain stream's problems (same ids, same text) whose generator is one of
    those named, by reasoning-gym's own record of each index's generator; ``other-templates=`` the rest."""
    import reasoning_gym

    plain = {e.id: e for e in load_examples("gsm-symbolic", limit=400, seed=2)}
    generator = reasoning_gym.create_dataset("gsm_symbolic", size=400, seed=2).task_indices
    chosen = load_examples("gsm-symbolic:templates=26,43-45", limit=6, seed=2)
    others = load_examples("gsm-symbolic:other-templates=26,43-45", limit=20, seed=2)
    for examples, inside in ((chosen, True), (others, False)):
        for e in examples:
            assert e == plain[e.id]
            assert (generator[int(e.id.rsplit("-", 1)[1])] in {26, 43, 44, 45}) is inside
    assert len(chosen) == 6 and len(others) == 20
    assert len(load_examples("gsm-symbolic:templates=26", limit=3, seed=0)) == 3  # one template in 85: the stream grows


@pytest.mark.parametrize("source, message", [
    ("gsm-symbolic:templates=a", "'a' is not a template id"),
    ("gsm-symbolic:templates=5-3", "'5-3' is not a template id or range"),
    ("gsm-symbolic:templates=5000", "no template 5000"),
    ("gsm-symbolic:sizes=1", "give gsm-symbolic:templates=IDS"),
])
def test_gsm_symbolic_template_specs_are_checked(source, message):
    with pytest.raises(DataError, match=message):
        load_examples(source, limit=2)


def test_gsm8k_removes_calculator_annotations(gsm8k_path):
    examples = load_examples(f"gsm8k:{gsm8k_path}", limit=3)
    first = examples[0]
    assert first.id == "gsm8k-1"
    assert first.answer == "72"
    assert first.reasoning == ("Natalia sold 48/2 = 24 clips in May.\n"
                               "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert all("<<" not in e.reasoning for e in examples)


def test_jsonl_is_used_verbatim(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "a", "question": "Q?", "reasoning": " r1 ", "answer": "7"},
            {"id": "b", "question": "Q2?", "reasoning": "r2", "answer": 8}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = load_examples(f"jsonl:{path}")
    assert [(e.id, e.reasoning, e.answer) for e in examples] == [("a", " r1 ", "7"), ("b", "r2", "8")]


BROKEN = [
    (b'{"id": "x", "question": "q", "reasoning": "r", "answer": "1"\n', "line 1: malformed JSON"),
    (b'{"id": "x", "question": "q", "answer": "1"}\n', "line 1: missing field 'reasoning'"),
    (b'{"id": "x", "question": "q", "reasoning": "  ", "answer": "1"}\n', "line 1: field 'reasoning' is empty"),
    (b'{"id": "x", "question": "q", "reasoning": "\xff\xfe", "answer": "1"}\n', "line 1: undecodable bytes"),
    (b'[1, 2]\n', "line 1: not a JSON object"),
]


@pytest.mark.parametrize("line,message", BROKEN)
def test_bad_lines_name_file_line_and_problem(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(line)
    with pytest.raises(DataError) as err:
        load_examples(f"jsonl:{path}")
    assert str(err.value).startswith(f"{path}, line 1: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_ids_and_skip_bad(tmp_path):
    good = {"id": "a", "question": "q", "reasoning": "r", "answer": "1"}
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([json.dumps(good).encode(), b"{oops", json.dumps(good).encode(),
                                 json.dumps({**good, "id": "b"}).encode()]) + b"\n")
    with pytest.raises(DataError, match=r"mixed.jsonl, line 2: malformed JSON"):
        load_examples(f"jsonl:{path}")
    skipped: list[str] = []
    examples = load_examples(f"jsonl:{path}", skip_bad=True, skipped=skipped)
    assert [e.id for e in examples] == ["a", "b"]
    assert len(skipped) == 2 and "line 3: duplicate id 'a'" in skipped[1]


def test_gsm8k_without_final_marker(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "no marker here"}) + "\n")
    with pytest.raises(DataError, match=r"g.jsonl, line 1: no '####'"):
        load_examples(f"gsm8k:{path}")


def test_unknown_source_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown data source"):
        load_examples("csv:foo")
    with pytest.raises(DataError, match="no such file"):
        load_examples(f"jsonl:{tmp_path / 'nope.jsonl'}")


def test_a_gsm8k_chain_made_only_of_calculator_annotations_is_a_bad_line(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(json.dumps({"question": "q?", "answer": "<<2+2=4>>\n#### 4"}) + "\n"
                    + json.dumps({"question": "r?", "answer": "Two and two make 4.\n#### 4"}) + "\n")
    with pytest.raises(DataError, match="line 1: the chain is empty once calculator annotations"):
        load_examples(f"gsm8k:{path}")
    skipped = []
    assert [e.id for e in load_examples(f"gsm8k:{path}", skip_bad=True, skipped=skipped)] == ["gsm8k-2"]
    assert len(skipped) == 1


def test_gsm_symbolic_twins_share_template_and_numbers():
    """gsm-symbolic-1-92 is training problem gsm-symbolic-0-1916 with a tower of tiles for a building of bricks."""
    train = load_examples("gsm-symbolic:templates=72", limit=60, seed=0)
    twin = next(e for e in load_examples("gsm-symbolic:templates=72", limit=10, seed=1) if e.id == "gsm-symbolic-1-92")
    original = next(e for e in train if e.id == "gsm-symbolic-0-1916")
    assert twin.question != original.question and twin.answer == original.answer
    assert problem_key(twin.id, twin.question) == problem_key(original.id, original.question)
    other = next(e for e in train if e.id != original.id)
    assert problem_key(other.id, other.question) != problem_key(original.id, original.question)


def test_drop_twins_leaves_out_training_twins_and_repeats():
    train = load_examples("gsm-symbolic:templates=72", limit=60, seed=0)
    candidates = load_examples("gsm-symbolic:templates=72", limit=40, seed=1)
    planted = Example("mine-1", "What is 2 + 2?", "2 + 2 = 4", "4")
    again = Example("mine-2", "what is 2 +  2?", "2 plus 2", "4")  # the same question, written otherwise
    kept, dropped = drop_twins(candidates + [planted, again], [(e.id, e.question) for e in train])
    assert "gsm-symbolic-1-92" not in {e.id for e in kept}  # the twin of a training problem
    assert planted in kept and again not in kept and dropped["repeated"] >= 1
    keys = [problem_key(e.id, e.question) for e in kept]
    assert len(set(keys)) == len(keys)  # no two kept problems are the same problem
    assert not set(keys) & {problem_key(e.id, e.question) for e in train}
    assert dropped["seen"] >= 1 and len(kept) + dropped["seen"] + dropped["repeated"] == len(candidates) + 2
