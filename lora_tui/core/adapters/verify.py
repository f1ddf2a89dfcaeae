"""An exported GGUF file checked against the adapter in MLX, with llama.cpp itself.

A few of the adapter's held-out prompts are answered greedily in MLX. Then both MLX and
llama.cpp read the same tokens (prompt, then that answer) and pick their next token at every
position of the answer: the share of positions where they pick the same one is the agreement.
Reading one sequence on both sides compares the models, not where two greedy answers drift
apart after a near-tie. llama.cpp runs in a process of its own (lora_tui.core.adapters.llama_reader),
so a crash in it cannot take lora-tui down, and only when llama-cpp-python is installed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.data.records import Record, dataset_files, load_records
from lora_tui.core.errors import UserError

PROMPTS = 4
ANSWER_TOKENS = 16
AGREEMENT_NEEDED = 0.8  # below this the file does not behave as the adapter does
_FALLBACK_PROMPTS = ["What can you help me with?", "Write one sentence about the sea.", "What is 12 plus 30?"]


@dataclass(frozen=True)
class Verification:
    prompts: int
    positions: int
    agreement: float

    def line(self) -> str:
        return (
            f"Checked in llama.cpp: it picks the token MLX picks at {self.agreement:.0%} of {self.positions} "
            f"positions ({self.prompts} held-out prompts)."
        )


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def verify_gguf(
    model_path: Path,
    adapter_dir: Path,
    gguf_file: Path,
    lora_file: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Verification | None:
    """How far llama.cpp on `gguf_file` (with `lora_file` applied, if given) agrees with the adapter in MLX;
    None when llama.cpp is not installed. A clear disagreement is a UserError."""
    if not llama_cpp_available():
        log("Not checked in llama.cpp: llama-cpp-python is not installed (pip install llama-cpp-python).")
        return None
    sequences, expected = _mlx_choices(model_path, adapter_dir)
    theirs = _llama_cpp_choices(gguf_file, lora_file, sequences, [len(e) for e in expected])
    pairs = [(a, b) for ours, other in zip(expected, theirs, strict=True) for a, b in zip(ours, other, strict=True)]
    result = Verification(len(sequences), len(pairs), sum(a == b for a, b in pairs) / max(len(pairs), 1))
    if result.agreement < AGREEMENT_NEEDED:
        raise UserError(
            f"{gguf_file} does not behave as the adapter does in MLX: llama.cpp picks the same next token at only "
            f"{result.agreement:.0%} of {result.positions} positions. Please report it; `--no-verify` writes it anyway."
        )
    return result


def held_out_prompts(adapter_dir: Path, count: int = PROMPTS) -> list[list[dict]]:
    """The first prompts of the adapter's validation or test set (its training set if it has neither)."""
    dataset = read_metadata(adapter_dir).get("dataset")
    records: list[Record] = []
    try:
        files = dataset_files(Path(dataset)) if dataset else {}
        for split in ("valid", "test", "train"):
            if split in files:
                records = [r for r in load_records(files[split]) if r.is_chat][:count]
                if records:
                    break
    except (UserError, OSError):
        records = []
    if records:
        return [list(record.prompt_messages) for record in records]
    return [[{"role": "user", "content": text}] for text in _FALLBACK_PROMPTS[:count]]


def _mlx_choices(model_path: Path, adapter_dir: Path) -> tuple[list[list[int]], list[list[int]]]:
    """Per prompt: the tokens both sides read (prompt + MLX's greedy answer), and MLX's pick at each answer token."""
    import mlx.core as mx

    from lora_tui.core.inference.generate import Generator, Turn, greedy_batch

    generator = Generator(model_path)
    generator.use_adapter(adapter_dir)
    sequences, expected = [], []
    for messages in held_out_prompts(adapter_dir):
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        turns = [Turn(m["role"], m["content"]) for m in messages if m["role"] != "system"]
        prompt = generator.prompt_tokens(turns, system)
        [answer] = greedy_batch(generator.model, generator.tokenizer, [prompt], ANSWER_TOKENS)
        answer_ids = list(generator.tokenizer.encode(answer.text, add_special_tokens=False))[:ANSWER_TOKENS]
        if not answer_ids:
            continue
        sequence = prompt + answer_ids
        logits = generator.model(mx.array([sequence]))[0]
        picks = mx.argmax(logits[len(prompt) - 1 : len(sequence) - 1], axis=-1)
        sequences.append(sequence)
        expected.append(picks.tolist())
    return sequences, expected


def _llama_cpp_choices(gguf_file: Path, lora_file: Path | None, sequences, counts) -> list[list[int]]:
    request = {"model": str(gguf_file), "lora": str(lora_file) if lora_file else None}
    request["cases"] = [{"tokens": tokens, "picks": count} for tokens, count in zip(sequences, counts, strict=True)]
    result = subprocess.run(
        [sys.executable, "-m", "lora_tui.core.adapters.llama_reader"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise UserError(f"{gguf_file}: llama.cpp could not read it back ({reason}).")
    return json.loads(result.stdout)["picks"]
