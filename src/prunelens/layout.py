"""Render an example as the exact token sequence every stage scores.

Layout (token ids, concatenated)::

    prompt_ids    = chat template of [user: question] with the assistant header (generation prompt)
                    [+ the opening of a think block: the think layout]
    reasoning_ids = tokenizer(reasoning), no special tokens   <- the deletable tokens
    post_ids      = tokenizer(between + "Answer: {answer}" + the template's end-of-turn text)

``between`` is a line break (the plain layout) or the close of the think block (``</think>`` and
the blank line the template puts after it: the think layout), so a thinking model's chain is
scored inside its think block and its answer after it, as it writes them. ``LAYOUTS``: ``auto``
(think where the template opens a think block: Qwen3, DeepSeek-R1-Distill; plain elsewhere),
``think`` or ``plain``. Each part is tokenised on its own, so the ids of a pruned chain are
``prompt_ids + kept reasoning_ids + post_ids``. Decoding the concatenation gives back ``render_text``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import Example
from .errors import LayoutError  # noqa: F401  (re-exported: raised here, defined with the other user errors)

ANSWER = "Answer: "
LAYOUTS = ("auto", "think", "plain")
_PROBE = "\x00PRUNELENS\x00"
_REASONING = "\x00PRUNELENS-REASONING\x00"
THINK_CLOSE = "\n</think>\n\n"  # where a template opens a think block but will not render one


@dataclass(frozen=True)
class Layout:
    prompt_ids: list[int]
    reasoning_ids: list[int]
    post_ids: list[int]
    spans: list[tuple[int, int]]  # character span of each reasoning token in the reasoning text
    reasoning: str = ""  # the reasoning text the spans index

    @property
    def token_texts(self) -> list[str]:
        """Each reasoning token's text: its span of the reasoning."""
        return [self.reasoning[a:b] for a, b in self.spans]

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.reasoning_ids + self.post_ids

    @property
    def words(self) -> list[list[int]]:
        """Reasoning token indices grouped into words (what ``greedy-words`` deletes whole; see ``word_units``)."""
        return word_units(self.token_texts)

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.reasoning_ids) + len(self.post_ids)


def word_units(texts: list[str]) -> list[list[int]]:
    """Token indices grouped into words: a token that starts with white space starts a word, and so
    does the token after a line break; a token of spaces alone (how some tokenizers write the space
    before a number) joins the word after it."""
    words: list[list[int]] = []
    previous = ""
    for k, text in enumerate(texts):
        lone_space = previous != "" and previous.strip(" \t") == ""
        if not words or previous.endswith("\n") or (text[:1].isspace() and not lone_space):
            words.append([k])
        else:
            words[-1].append(k)
        previous = text
    return words


@dataclass(frozen=True)
class Template:
    """The text around a chain: ``prompt`` (through the generation prompt, and the think block's
    opening in the think layout), ``between`` (after the reasoning, before ``Answer:``), ``end`` (the
    template's text after an assistant message), and the layout it is (``think`` or ``plain``)."""

    prompt: str
    between: str
    end: str
    layout: str


def _render(tokenizer, messages, **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def _think(tokenizer, messages: list[dict], prompt: str) -> Template | None:
    """The think layout of a template, where it opens a think block: rendered with the reasoning as the
    assistant turn's ``reasoning_content`` (Qwen3), or after a generation prompt that ends inside an
    opened block (DeepSeek-R1-Distill, which renders no reasoning)."""
    try:
        full = _render(tokenizer, messages + [{"role": "assistant", "content": _PROBE, "reasoning_content": _REASONING}])
    except Exception:  # a template that takes no reasoning_content renders it any way it fails
        full = ""
    if _REASONING in full and _PROBE in full.split(_REASONING, 1)[1]:
        head, rest = full.split(_REASONING, 1)
        between, _, end = rest.partition(_PROBE)
        if head.startswith(prompt) and "<think>" in head[len(prompt):] + between:
            return Template(head, between, end, "think")
    if prompt.rstrip().endswith("<think>"):
        end = _render(tokenizer, messages + [{"role": "assistant", "content": _PROBE}]).partition(_PROBE)[2]
        return Template(prompt, THINK_CLOSE, end, "think")
    return None


def template_parts(tokenizer, question: str, layout: str = "auto", example_id: str = "") -> Template:
    """The template around a chain of ``question`` in ``layout`` (``LAYOUTS``); a one-line error where the
    template does not render the prompt as the start of the reply, saying where they differ."""
    from .errors import SettingsError

    if layout not in LAYOUTS:
        raise SettingsError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    messages = [{"role": "user", "content": question}]
    if not getattr(tokenizer, "chat_template", None):  # base models: a plain question / reasoning text
        if layout == "think":
            raise SettingsError("the model has no chat template, so no think block: use --layout plain or auto")
        return Template(f"Question: {question}\nReasoning: ", "\n", tokenizer.eos_token or "", "plain")
    prompt = _render(tokenizer, messages, add_generation_prompt=True)
    if layout != "plain":
        think = _think(tokenizer, messages, prompt)
        if think is not None:
            return think
        if layout == "think":
            raise SettingsError("the chat template opens no think block: use --layout plain or auto")
    full = _render(tokenizer, messages + [{"role": "assistant", "content": _PROBE}])
    head, _, end = full.partition(_PROBE)
    if not head.startswith(prompt.rstrip()):
        at = next((k for k, (a, b) in enumerate(zip(prompt, head)) if a != b), min(len(prompt), len(head)))
        who = f"example {example_id}: " if example_id else ""
        raise LayoutError(f"{who}the chat template does not render the prompt as the start of the reply: they differ "
                          f"at character {at}, prompt {prompt[max(0, at - 20):at + 20]!r} against reply "
                          f"{head[max(0, at - 20):at + 20]!r}; a template that opens a think block needs "
                          "--layout think (or auto)")
    # the reply goes where the template puts an assistant message's content (after Qwen3's empty think block)
    return Template(head if head.startswith(prompt) else prompt, "\n", end, "plain")


def tile_spans(offsets) -> list[tuple[int, int]]:
    """Character spans that tile the text once, in token order.

    Byte-level tokenizers give every byte token of one character (an emoji, a CJK character) that
    character's whole span; here the first such token keeps the character and the rest are empty.
    """
    spans, end = [], 0
    for start, stop in offsets:
        start = max(start, end)
        stop = max(stop, start)
        spans.append((start, stop))
        end = stop
    return spans


def render(example: Example, tokenizer, max_length: int | None = None, empty_ok: bool = False,
           layout: str = "auto") -> Layout:
    """Lay out ``example`` for ``tokenizer`` in ``layout`` (see module docstring); raises LayoutError on bad input.

    ``empty_ok``: an empty reasoning is laid out as no reasoning tokens (a student's answer-only
    training chain) instead of an error.
    """
    if not example.reasoning.strip() and not empty_ok:
        raise LayoutError(f"example {example.id}: empty reasoning")
    if not example.answer.strip():
        raise LayoutError(f"example {example.id}: empty answer")
    template = template_parts(tokenizer, example.question, layout, example.id)
    prompt_ids = tokenizer(template.prompt, add_special_tokens=False)["input_ids"]
    enc = tokenizer(example.reasoning, add_special_tokens=False, return_offsets_mapping=True) if example.reasoning \
        else {"input_ids": [], "offset_mapping": []}
    post_ids = tokenizer(template.between + ANSWER + example.answer + template.end, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(example.answer.strip(), add_special_tokens=False)["input_ids"]
    if not answer_ids:
        raise LayoutError(f"example {example.id}: the answer tokenises into nothing")
    layout = Layout(prompt_ids, list(enc["input_ids"]), post_ids, tile_spans(enc["offset_mapping"]), example.reasoning)
    if not layout.reasoning_ids and not empty_ok:
        raise LayoutError(f"example {example.id}: the reasoning tokenises into nothing")
    if max_length is not None and len(layout) > max_length:
        raise LayoutError(
            f"example {example.id}: {len(layout)} tokens exceed the model's context of {max_length}")
    return layout


def render_text(example: Example, tokenizer, layout: str = "auto") -> str:
    """The text whose tokens ``render`` returns: prompt + reasoning + answer line + end of turn."""
    t = template_parts(tokenizer, example.question, layout, example.id)
    return t.prompt + example.reasoning + t.between + ANSWER + example.answer + t.end
