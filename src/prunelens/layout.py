"""Render an example as the exact token sequence every stage scores.

Layout (token ids, concatenated)::

    prompt_ids    = chat template of [user: question] with the assistant header (generation prompt)
    reasoning_ids = tokenizer(reasoning), no special tokens   <- the deletable tokens
    post_ids      = tokenizer("\\nAnswer: {answer}") + the template's end-of-turn text, tokenised

Each part is tokenised on its own, so the ids of a pruned chain are ``prompt_ids + kept
reasoning_ids + post_ids``. Decoding the concatenation gives back ``render_text``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import Example
from .errors import LayoutError  # noqa: F401  (re-exported: raised here, defined with the other user errors)

ANSWER_PREFIX = "\nAnswer: "
_PROBE = "\x00PRUNELENS\x00"


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


def template_parts(tokenizer, question: str) -> tuple[str, str]:
    """(prompt text up to the assistant header, end-of-turn text after the assistant's message)."""
    messages = [{"role": "user", "content": question}]
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": _PROBE}], tokenize=False)
        head, _, end = full.partition(_PROBE)
        if not head.startswith(prompt.rstrip()):
            raise LayoutError("the chat template does not render the prompt as a prefix of the reply")
        return prompt, end
    # Base models without a template: a plain question / reasoning / answer text.
    return f"Question: {question}\nReasoning: ", (tokenizer.eos_token or "")


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


def render(example: Example, tokenizer, max_length: int | None = None, empty_ok: bool = False) -> Layout:
    """Lay out ``example`` for ``tokenizer`` (see module docstring); raises LayoutError on bad input.

    ``empty_ok``: an empty reasoning is laid out as no reasoning tokens (a student's answer-only
    training chain) instead of an error.
    """
    if not example.reasoning.strip() and not empty_ok:
        raise LayoutError(f"example {example.id}: empty reasoning")
    if not example.answer.strip():
        raise LayoutError(f"example {example.id}: empty answer")
    prompt, end = template_parts(tokenizer, example.question)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    enc = tokenizer(example.reasoning, add_special_tokens=False, return_offsets_mapping=True) if example.reasoning \
        else {"input_ids": [], "offset_mapping": []}
    post_ids = tokenizer(ANSWER_PREFIX + example.answer + end, add_special_tokens=False)["input_ids"]
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


def render_text(example: Example, tokenizer) -> str:
    """The text whose tokens ``render`` returns: prompt + reasoning + answer line + end of turn."""
    prompt, end = template_parts(tokenizer, example.question)
    return prompt + example.reasoning + ANSWER_PREFIX + example.answer + end
