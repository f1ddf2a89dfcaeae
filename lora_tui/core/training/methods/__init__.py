"""The training methods: one module each, one line each in METHODS.

`check_method_fits_format` and `check_method_fits_data` refuse, before a run, data
the chosen method cannot train on, saying what it needs.
"""

from __future__ import annotations

from lora_tui.core.data.records import Record
from lora_tui.core.errors import UserError
from lora_tui.core.training.methods.base import Method, MicroBatch, RunContext
from lora_tui.core.training.methods.dpo import DirectPreference
from lora_tui.core.training.methods.grpo import GroupRelative
from lora_tui.core.training.methods.orpo import OddsRatioPreference
from lora_tui.core.training.methods.sft import Supervised

METHODS: dict[str, type[Method]] = {
    method.name: method
    for method in (
        Supervised,
        DirectPreference,
        OddsRatioPreference,
        GroupRelative,
    )
}

# What each kind of data looks like, and the methods that train on it.
EXAMPLES = {
    "records": 'a record: {"messages": [{"role": "user", "content": "Name a colour."}, '
    '{"role": "assistant", "content": "Blue."}]}',
    "pairs": 'a pair: {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I cannot say."}',
    "prompts": 'a prompt: {"prompt": "What is 7 times 6?", "answer": "42"}',
}
KIND_OF_FORMAT = {"preference": "pairs", "grpo": "prompts"}  # every other format holds records
# (one of them, many, many in short)
KIND_WORDS = {
    "records": ("record", "records", "records"),
    "pairs": ("preference pair", "preference pairs", "pairs"),
    "prompts": ("GRPO prompt", "GRPO prompts (prompts with answers to score against)", "prompts"),
}


def method_class(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"No training method named {name!r} (methods: {', '.join(METHODS)}).") from None


def data_kind(record: Record) -> str:
    return "pairs" if record.is_preference else "prompts" if record.is_prompt else "records"


def methods_for(kind: str) -> str:
    names = [name for name, method in METHODS.items() if method.data == kind]
    return "--method " + " or ".join(names)


def check_method_fits_format(method: str, data_format: str | None, path) -> None:
    """Before a run: data of another kind than the method trains on is refused with what the method needs."""
    if data_format is None:
        return
    needed = method_class(method).data
    kind = KIND_OF_FORMAT.get(data_format, "records")
    if kind == needed:
        return
    if kind == "records":
        raise UserError(
            f"{path}: --method {method} trains on {KIND_WORDS[needed][1]}, not {data_format} records; "
            f"{EXAMPLES[needed]}"
        )
    raise UserError(
        f"{path}: these are {KIND_WORDS[kind][1]}; train them with {methods_for(kind)} ({EXAMPLES[needed]})."
    )


def check_method_fits_data(method: str, records: list[Record], path) -> None:
    """The same, line by line, for the records a run loads."""
    needed = method_class(method).data
    wrong = next((r for r in records if data_kind(r) != needed), None)
    if wrong is None:
        return
    kind = data_kind(wrong)
    if kind == "records":
        raise UserError(
            f"{path}, line {wrong.line}: --method {method} trains on {KIND_WORDS[needed][1]}; {EXAMPLES[needed]}"
        )
    one, _, short = KIND_WORDS[kind]
    raise UserError(
        f"{path}, line {wrong.line}: this is a {one}; train {short} with {methods_for(kind)} ({EXAMPLES[needed]})."
    )


__all__ = [
    "METHODS",
    "Method",
    "MicroBatch",
    "RunContext",
    "check_method_fits_data",
    "check_method_fits_format",
    "method_class",
]
