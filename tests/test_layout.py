"""Laying out a chain as the token sequence every stage scores (``prunelens.layout``)."""

import pytest

from prunelens.data import Example, load_examples
from prunelens.layout import Layout, LayoutError, render, render_text, tile_spans


def test_layout_round_trip_and_spans(model, gsm8k_path):
    tok = model.tokenizer
    examples = load_examples(f"gsm8k:{gsm8k_path}", limit=20) + load_examples("gsm-symbolic", limit=5)
    for example in examples:
        layout = render(example, tok)
        assert tok.decode(layout.ids) == render_text(example, tok)
        assert tok.decode(layout.prompt_ids).endswith("<|im_start|>assistant\n")
        assert tok.decode(layout.post_ids) == f"\nAnswer: {example.answer}<|im_end|>\n"
        for token, (a, b) in zip(layout.reasoning_ids, layout.spans):
            assert tok.decode([token]) == example.reasoning[a:b]
        assert layout.spans[0][0] == 0 and layout.spans[-1][1] == len(example.reasoning)


def test_words_group_tokens_as_written():
    # the space before a number is a token of its own and joins the number; a line break ends a word
    tokens = ["Betty", " has", " ", "1", "0", "0", " /", " ", "2", " =", "$", "5", "0", ".", "\n", "She", "'s"]
    spans, end = [], 0
    for t in tokens:
        spans.append((end, end + len(t)))
        end += len(t)
    layout = Layout([1], [7] * len(tokens), [2], spans, "".join(tokens))
    assert layout.words == [[0], [1], [2, 3, 4, 5], [6], [7, 8], [9, 10, 11, 12, 13], [14], [15, 16]]


def test_layout_rejects_bad_examples(model):
    tok = model.tokenizer
    with pytest.raises(LayoutError, match="empty reasoning"):
        render(Example("e", "q", "   ", "1"), tok)
    with pytest.raises(LayoutError, match="empty answer"):
        render(Example("e", "q", "r", " "), tok)
    with pytest.raises(LayoutError, match="exceed the model's context of 50"):
        render(Example("e", "q", "word " * 100, "1"), tok, max_length=50)


def test_spans_tile_non_ascii_text_once(tiny_model):
    assert tile_spans([(0, 1), (1, 3), (1, 3), (3, 4)]) == [(0, 1), (1, 3), (3, 3), (3, 4)]
    reasoning = "Tom has 3 🍎 and 漢字 costs 5 😀😀 each."
    layout = render(Example("x", "How many?", reasoning, "8"), tiny_model.tokenizer)
    texts = [reasoning[a:b] for a, b in layout.spans]
    assert "".join(texts) == reasoning  # each character once, no repeats
    assert [t.strip() for t in texts if t.strip() in ("😀", "🍎")] == ["🍎", "😀", "😀"]
    assert all(b >= a for a, b in layout.spans)
    assert all(layout.spans[i][1] <= layout.spans[i + 1][0] for i in range(len(layout.spans) - 1))
