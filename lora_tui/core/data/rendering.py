"""A conversation as the model reads it: through its chat template, or as plain text when it has none.

A base model (Gemma 3 270M, any pretrained model imported from GGUF) has no chat template.
It reads a prompt/completion record as a continuation: the system prompt (if any) and a
blank line, the prompt, then the completion; training ends the completion with EOS so the
model learns to stop. A conversation of several turns has no plain form a base model was
trained on, so it is refused with one sentence rather than rendered in a made-up format.
"""

from __future__ import annotations

from lora_tui.core.errors import UserError

SYSTEM_SEPARATOR = "\n\n"


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def template_takes_tools(tokenizer) -> bool:
    """Whether the chat template renders tool declarations and calls (it reads `tools` or `tool_calls`)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "tools" in template or "tool_calls" in template


def template_thinks(tokenizer) -> bool:
    """Whether the chat template has a thinking switch (Qwen3's `enable_thinking`; on unless told off)."""
    return "enable_thinking" in (getattr(tokenizer, "chat_template", None) or "")


def _uses_tools(messages: list[dict], tools) -> bool:
    return bool(tools) or any("tool_calls" in m or m["role"] == "tool" for m in messages)


def _check_tools(tokenizer, messages: list[dict], tools, line: int | None) -> None:
    if has_chat_template(tokenizer) and _uses_tools(messages, tools) and not template_takes_tools(tokenizer):
        where = f"line {line}: " if line else ""
        raise UserError(
            f"{where}the record calls tools, and the model's chat template has no place for tools or tool calls; "
            "train tool calling on a model whose template supports it (Qwen, Llama 3.1+, Mistral, ...)."
        )


def _template_arguments(tools) -> dict:
    return {"tools": list(tools)} if tools else {}


def _apply_template(
    tokenizer, messages: list[dict], line: int | None, tokenize: bool, add_generation_prompt: bool, tools
):
    from jinja2 import TemplateError

    extra = {"return_dict": False} if tokenize else {}
    try:
        return tokenizer.apply_chat_template(
            messages,
            tokenize=tokenize,
            add_generation_prompt=add_generation_prompt,
            **extra,
            **_template_arguments(tools),
        )
    except TemplateError as refusal:  # the template's own raise_exception: "roles must alternate", "no system role"
        where = f"line {line}: " if line else ""
        raise UserError(f"{where}the model's chat template refuses this conversation: {refusal}") from None


def system_prompt_dropped(tokenizer, messages: list[dict]) -> bool:
    """Whether the chat template leaves out the conversation's system prompt (a template with no system role
    that does not fold it into the first user turn, as Gemma's does)."""
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    if not system or not has_chat_template(tokenizer):
        return False
    return system.strip() not in render_text(tokenizer, messages)


def plain_text(messages: list[dict], line: int | None = None) -> str:
    """A one-turn conversation as a base model continues it: system, blank line, prompt, completion."""
    users = sum(1 for m in messages if m["role"] == "user")
    assistants = sum(1 for m in messages if m["role"] == "assistant")
    if users > 1 or assistants > 1 or any(m["role"] not in ("system", "user", "assistant") for m in messages):
        where = f"line {line}: " if line else ""
        raise UserError(
            f"{where}the model has no chat template, so a conversation of several turns (or tool calls) cannot "
            "be rendered for it; give it text or prompt/completion records, or use an instruct model."
        )
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    body = "".join(m["content"] for m in messages if m["role"] != "system")
    return f"{system}{SYSTEM_SEPARATOR}{body}" if system else body


def render_text(
    tokenizer, messages: list[dict], add_generation_prompt: bool = False, line: int | None = None, tools=()
) -> str:
    """The text the model reads, special tokens written out (no BOS or EOS in the plain form)."""
    _check_tools(tokenizer, messages, tools, line)
    if has_chat_template(tokenizer):
        return _apply_template(
            tokenizer, messages, line, tokenize=False, add_generation_prompt=add_generation_prompt, tools=tools
        )
    return plain_text(messages, line)


def render_tokens(
    tokenizer, messages: list[dict], add_generation_prompt: bool = False, line: int | None = None, tools=()
) -> list[int]:
    """The token ids the model reads; in the plain form a finished answer ends with EOS."""
    if not messages:
        return []
    _check_tools(tokenizer, messages, tools, line)
    if has_chat_template(tokenizer):
        return list(
            _apply_template(
                tokenizer, messages, line, tokenize=True, add_generation_prompt=add_generation_prompt, tools=tools
            )
        )
    tokens = list(tokenizer.encode(plain_text(messages, line)))
    eos = tokenizer.eos_token_id
    if not add_generation_prompt and eos is not None and (not tokens or tokens[-1] != eos):
        tokens.append(eos)
    return tokens
