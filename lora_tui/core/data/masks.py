"""Which tokens of a record train: every assistant turn with its end of turn, and no prompt token.

A conversation trains as its chat template renders it, whole. Assistant turn k starts where the
conversation before it, rendered with the generation prompt, ends; that rendering must be a prefix
of the whole one, or the template changes earlier turns as later ones come and no mask can be
placed (the record is refused). The turn ends where the conversation up to it ends, when that
rendering is a prefix too. Templates that render a final assistant turn differently from an
earlier one (Qwen3 gives the last an empty thinking block) end an earlier turn at its first
end-of-turn token and the whitespace the template writes after it. The last turn trains to the
end of the record. (mlx-lm's `mask_prompt` trains only the last assistant message.)

Plain text trains whole; a prompt/completion record for a model with no chat template trains its
completion and EOS.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from lora_tui.core.data.records import Record
from lora_tui.core.data.rendering import has_chat_template, render_tokens, system_prompt_dropped
from lora_tui.core.errors import UserError

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")
BOUNDARY_SLACK = 2  # tokens at the end of a rendered prompt that may tokenize otherwise once an answer follows


@dataclass(frozen=True)
class Part:
    """A run of a record's tokens: one assistant turn (trained), or the prompt messages between two."""

    label: str  # "assistant 1", "system + user", "text", ...
    start: int
    end: int
    trained: bool

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class MaskedRecord:
    tokens: tuple[int, ...]
    parts: tuple[Part, ...]
    system_dropped: bool = False  # the chat template has no place for the record's system prompt

    @property
    def spans(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.start, p.end) for p in self.parts if p.trained)

    @property
    def prompt_length(self) -> int:
        """Tokens before the first trained one."""
        return next((p.start for p in self.parts if p.trained), len(self.tokens))

    def trained(self) -> list[bool]:
        flags = [False] * len(self.tokens)
        for start, end in self.spans:
            flags[start:end] = [True] * (end - start)
        return flags

    def trained_tokens(self) -> int:
        return sum(end - start for start, end in self.spans)


def mask_record(tokenizer, record: Record, last_turn_only: bool = False, stops=None) -> MaskedRecord:
    """The record's tokens as training reads them, split into trained and masked parts. `stops`: more tokens
    that end a turn than `turn_enders` finds."""
    if record.text is not None:
        tokens = _text_tokens(tokenizer, record.text)
        return MaskedRecord(tuple(tokens), (Part("text", 0, len(tokens), True),))
    messages = list(record.messages)
    dropped = system_prompt_dropped(tokenizer, messages)
    if dropped:  # rendered as the template renders it, without; the record's prefixes then agree
        messages = [m for m in messages if m["role"] != "system"]
    whole = render_tokens(tokenizer, messages, line=record.line, tools=record.tools)
    answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if last_turn_only or not has_chat_template(tokenizer):
        answers = answers[-1:]
    stops = turn_enders(tokenizer, stops or ())
    spans = [_turn_span(tokenizer, record, messages, whole, i, stops) for i in answers]
    _check_in_order(record, spans)
    parts = _parts(messages, answers, spans, len(whole), has_chat_template(tokenizer))
    return MaskedRecord(tuple(whole), parts, dropped)


def turn_enders(tokenizer, extra=()) -> set[int]:
    """The ids that may end a turn: EOS, the model's eos_token_ids, and the known end-of-turn tokens the
    tokenizer has (a config may name only <|endoftext|> where the template ends turns with <|end|>)."""
    listed = getattr(tokenizer, "eos_token_ids", None)  # mlx-lm's set; a transformers tokenizer may answer an int
    ids = set(extra) | ({listed} if isinstance(listed, int) else set(listed or ())) | {tokenizer.eos_token_id}
    added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
    return {added[token] for token in END_OF_TURN_TOKENS if token in added} | ids - {None}


def _text_tokens(tokenizer, text: str) -> list[int]:
    tokens = list(tokenizer.encode(text))
    if tokenizer.eos_token_id is not None and (not tokens or tokens[-1] != tokenizer.eos_token_id):
        tokens.append(tokenizer.eos_token_id)
    return tokens


def _turn_span(
    tokenizer, record: Record, messages: list[dict], whole: list[int], index: int, stops: set[int]
) -> tuple[int, int]:
    before = render_tokens(tokenizer, messages[:index], add_generation_prompt=True, tools=record.tools)
    start = _common_prefix(whole, before)
    # The prompt's last tokens may merge with the answer's first (plain text above all): a little slack.
    if has_chat_template(tokenizer) and start < len(before) - BOUNDARY_SLACK:
        raise UserError(
            f"{record.where}: the model's chat template renders the conversation before assistant turn "
            f"{_turn_number(messages, index)} differently once later turns follow, so which tokens train cannot be "
            "placed; give each turn as its own record."
        )
    if index == len(messages) - 1:
        return start, len(whole)
    through = render_tokens(tokenizer, messages[: index + 1], tools=record.tools)
    if len(through) > start and whole[: len(through)] == through:
        return start, len(through)
    return start, _end_of_turn(tokenizer, record, whole, start, _turn_number(messages, index), stops)


def _common_prefix(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _end_of_turn(tokenizer, record: Record, whole: list[int], start: int, turn: int, stops: set[int]) -> int:
    """Just after the first end-of-turn token from `start`, and the whitespace the template writes after it."""
    end = next((i + 1 for i in range(start, len(whole)) if whole[i] in stops), None)
    if end is None:
        raise UserError(
            f"{record.where}: assistant turn {turn} has no end-of-turn token where the chat template renders it, "
            "so which tokens train cannot be placed."
        )
    while end < len(whole) and not tokenizer.decode([whole[end]]).strip():
        end += 1
    return end


def _turn_number(messages: list[dict], index: int) -> int:
    return sum(1 for m in messages[: index + 1] if m["role"] == "assistant")


def _check_in_order(record: Record, spans: list[tuple[int, int]]) -> None:
    for (_, end), (start, _) in itertools.pairwise(spans):
        if end > start:
            raise UserError(
                f"{record.where}: the model's chat template runs one assistant turn into the next, "
                "so which tokens train cannot be placed."
            )


def _parts(
    messages: list[dict], answers: list[int], spans: list[tuple[int, int]], length: int, templated: bool
) -> tuple[Part, ...]:
    parts, cursor, after = [], 0, 0
    for number, (index, (start, end)) in enumerate(zip(answers, spans, strict=True), start=1):
        if start > cursor:
            parts.append(Part(_prompt_label(messages[after:index], templated), cursor, start, False))
        parts.append(Part(f"assistant {number}" if templated else "completion", start, end, True))
        cursor, after = end, index + 1
    if length > cursor:
        parts.append(Part(_prompt_label(messages[after:], templated), cursor, length, False))
    return tuple(parts)


def _prompt_label(messages: list[dict], templated: bool) -> str:
    if not templated:
        return "prompt"
    roles = list(dict.fromkeys(m["role"] for m in messages))
    return " + ".join(roles) or "template"


def part_text(tokenizer, masked: MaskedRecord, part: Part) -> str:
    return tokenizer.decode(list(masked.tokens[part.start : part.end]))


def token_pieces(tokenizer, masked: MaskedRecord) -> list[dict]:
    """Each token as text with whether it trains (`data check --show-mask --json`)."""
    return [
        {"token": tokenizer.decode([token]), "trained": trained}
        for token, trained in zip(masked.tokens, masked.trained(), strict=True)
    ]


def mask_summary(masked: MaskedRecord) -> str:
    """ "58 tokens, 12 trained (2 assistant turns)" and a note when the system prompt was left out."""
    turns = sum(1 for p in masked.parts if p.trained)
    summary = (
        f"{len(masked.tokens)} tokens, {masked.trained_tokens()} trained ({turns} trained part{'s' * (turns != 1)})"
    )
    if masked.system_dropped:
        summary += "; the chat template has no place for the system prompt, so it is left out"
    return summary
