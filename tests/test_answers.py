"""Reading answers: a reply split at the model's own marker, the value it states, checking it; the
cases are written by hand, thinking-model replies among them."""

from __future__ import annotations

import pytest

from prunelens.answers import (
    Reply,
    answer_value,
    answers_match,
    extract_answer,
    split_reply,
)


@pytest.mark.parametrize("text, expected", [
    ("2 + 3 = 5, so she has 5 apples.\nAnswer: 5", "5"),                      # correct answer line
    ("She buys 3 and then 4 more.\nAnswer: 6", "6"),                          # a wrong answer is still read
    ("She buys 3 pens at $2 each, 3 * 2 = 6 dollars.", "6"),                  # no answer line: last number
    ("I cannot tell.", None),                                                 # no number at all
    ("Answer: 3\n4 + 5 = 9\nanswer: 12 apples\nThen 13 more.", "12"),         # the last Answer line wins
    ("Answer: 1 + 2 = 3\nSo 7.", "3"),                                        # the last number on that line
    ("Total: 1,000 + 200\nAnswer: $1,200.00", "1200"),
    ("Answer: -3.50", "-3.5"),
    ("Answer: 0.25", "0.25"),
    ("Answer: 18.", "18"),
    ("Answer: 7.", "7"),
    ("The answer is 18", "18"),                                               # fallback
    ("Answer: unknown\nI counted 4 then 9 eggs.", "9"),                       # no number on the line: fallback
    ("pages 3-5 were read\nAnswer: 2,500", "2500"),
])
def test_extract_answer_reads_hand_written_outputs(text, expected):
    assert extract_answer(text) == expected


def test_answers_match_compares_numbers_by_value():
    assert answers_match("1200.0", "1,200") and answers_match("1200", "1,200")
    assert answers_match(extract_answer("Answer: $18.00."), "18")
    assert not answers_match("1201", "1,200") and not answers_match(None, "18")
    assert not answers_match("18 apples", "18")  # a prediction is one number, not a sentence
    assert answers_match(" yes ", "yes") and not answers_match("no", "yes")  # non-numeric gold: text


def test_answers_match_reads_expressions_through_math_verify():
    assert answers_match("\\frac{1}{2}", "0.5") and answers_match("0.5", "\\frac{1}{2}")
    assert answers_match("1/2", "0.5") and answers_match("\\frac{3}{4}", "\\dfrac{3}{4}")
    assert not answers_match("\\frac{1}{3}", "0.5") and not answers_match("2^3", "9")
    assert answers_match("2^3", "8")


@pytest.mark.parametrize("text, think, expected", [
    # an Answer line: the reasoning is what comes before its line
    ("48 / 2 = 24 in May.\n48 + 24 = 72\nAnswer: 72", False, Reply("48 / 2 = 24 in May.\n48 + 24 = 72", "72", "answer-line")),
    ("It costs 3 * $400 = $1,200.\n**Answer:** $1,200.00", False, Reply("It costs 3 * $400 = $1,200.", "1200", "answer-line")),
    ("So 5 + 3 = 8 apples.\nAnswer: 5 + 3 = 8 apples", False, Reply("So 5 + 3 = 8 apples.", "8", "answer-line")),
    # GSM8K's marker
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", False, Reply("Natalia sold 48/2 = 24 clips in May.", "72", "####")),
    # boxed, on its own line and inside the last sentence; nested braces
    ("Half of 1 is 0.5.\nThe answer is $\\boxed{\\frac{1}{2}}$.", False, Reply("Half of 1 is 0.5.", "\\frac{1}{2}", "boxed")),
    ("So x = \\boxed{8}", False, Reply("So x =", "8", "boxed")),
    # JSON
    ('We add 2 and 3 to get 5.\n{"answer": 5}', False, Reply("We add 2 and 3 to get 5.", "5", "json")),
    # "the answer is", as the embedded model writes it: split at the sentence
    ("She sold 40 + 20 = 60 clips. The answer is: 100", False, Reply("She sold 40 + 20 = 60 clips.", "100", "answer-is")),
    ("Total = 480.\n\nThe answer is 480.\n\nThe answer is 480.", False, Reply("Total = 480.", "480", "answer-is")),
    ("He has 3 left. So the final answer is 3 apples, 1 more than Sam.", False,
     Reply("He has 3 left.", "3", "answer-is")),
    # the first marker splits; what comes after is a restatement
    ("2 + 3 = 5\nAnswer: 5\n\nThe answer is \"5\"", False, Reply("2 + 3 = 5", "5", "answer-line")),
    # no marker, or a marker with no answer after it, or nothing before it: no split
    ("Natalia sold 48 clips in April and", False, Reply("Natalia sold 48 clips in April and", None, None)),
    ("This answer is the step-by-step breakdown: 1. Add", False,
     Reply("This answer is the step-by-step breakdown: 1. Add", None, None)),
    ("The answer is 5.", False, Reply("", None, None)),
    ("Answer: 5", False, Reply("", None, None)),
    # a thinking model: the think block is the reasoning, the answer is read after its close
    ("Okay, 3 + 4 = 7. Wait, check: 7.\n</think>\n\nThe answer is \\boxed{7}.", True,
     Reply("Okay, 3 + 4 = 7. Wait, check: 7.", "7", "think")),
    ("<think>\nHmm, 12 / 4 = 3.\n</think>\n\nSo each gets 3 cookies, 12 in all.", False,
     Reply("Hmm, 12 / 4 = 3.", "12", "think")),  # no marker after the block: its last number
    ("Hmm, 12 / 4 = 3. Answer: 3 each, and I keep", True, Reply("Hmm, 12 / 4 = 3. Answer: 3 each, and I keep", None, None)),
    ("Let me think about 2 + 2.\n</think>\n\nI am not sure.", True, Reply("Let me think about 2 + 2.", None, None)),
])
def test_split_reply_at_the_models_own_marker(text, think, expected):
    assert split_reply(text, think=think) == expected


@pytest.mark.parametrize("text, expected", [
    ("72", "72"), (" $1,200.00.", "1200"), ("48 + 24 = 72 clips", "72"), ("72 clips, which is 2 more", "72"),
    ("\\boxed{36}", "36"), ("$\\frac{7}{2}$", "\\frac{7}{2}"), ("x = 3/4", "3/4"), ("-3.50", "-3.5"), ("none", None),
])
def test_answer_value_by_hand(text, expected):
    assert answer_value(text) == expected
