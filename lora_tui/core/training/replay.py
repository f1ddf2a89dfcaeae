"""Keep what it knew: the base model's own answers to general prompts, replayed while training.

Training hard on a narrow set (new facts, many epochs, every projection) moves the base
model's general answers too. `replay R` makes R of every epoch's records the base model's own
greedy answers to general prompts (replay_prompts.txt), so the loss pays for moving those as
well. The answers are generated once per base model, before the first step, and cached; only
answers that ended on their own are replayed (a cut answer would teach stopping mid-sentence).
Each epoch replays another sample of the answers (chosen by the seed and the epoch, so a resumed
run sees the same ones), so over the epochs the run sees most of them.

The same cache holds the base's answers to the drift prompts, which training with replay
checks at each validation (the drift prompts are never replayed: they measure what was kept).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from lora_tui.core.data.records import Record
from lora_tui.core.data.rendering import render_tokens
from lora_tui.core.files import atomic_write_text, exclusively
from lora_tui.core.inference.generate import Answer, greedy_batch

REPLAY_PROMPTS = Path(__file__).with_name("replay_prompts.txt")
REPLAY_TOKENS = 128  # long enough for the short answers general prompts get
GENERATION_BATCH = 16
_CACHE_FORMAT = 1


def replay_count(train_records: int, fraction: float) -> int:
    """Replayed records that make `fraction` of an epoch that has `train_records` of the user's own."""
    if fraction <= 0:
        return 0
    return max(1, round(train_records * fraction / (1 - fraction)))


def model_fingerprint(model_path: Path) -> str:
    """Changes when the model's files change: its folder, and each file's name, size and modification time."""
    folder = Path(model_path).resolve()
    digest = hashlib.sha256(str(folder).encode())
    for file in sorted(folder.iterdir()):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def base_answers(
    model,
    tokenizer,
    model_path: Path,
    questions: list[str],
    max_tokens: int,
    cache_dir: Path,
    starting_adapter: Path | None = None,
) -> list[dict]:
    """The model's greedy answers to `questions` (each {"prompt", "answer", "ended"}), from the cache if there.

    Call it while the model is as the run starts: the base with the LoRA update still zero, or with the
    adapter the run starts from (which is then part of the cache key).
    """
    starting = model_fingerprint(starting_adapter) if starting_adapter else None
    key = hashlib.sha256(
        json.dumps([_CACHE_FORMAT, model_fingerprint(model_path), starting, questions, max_tokens]).encode()
    ).hexdigest()
    path = Path(cache_dir) / "base-answers" / f"{key[:32]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusively(path):  # two runs on one base generate them once
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["answers"]
        answers = _generate(model, tokenizer, questions, max_tokens)
        atomic_write_text(path, json.dumps({"model": str(model_path), "answers": answers}, indent=1))
    return answers


def _generate(model, tokenizer, questions: list[str], max_tokens: int) -> list[dict]:
    answers = answer_questions(model, tokenizer, questions, max_tokens)
    return [
        {"prompt": question, "answer": answer.text.strip(), "ended": answer.ended}
        for question, answer in zip(questions, answers, strict=True)
    ]


def answer_questions(model, tokenizer, questions: list[str], max_tokens: int) -> list[Answer]:
    """Greedy answers to one-turn questions, in the same batches every time: a later check of the trained
    model compares like with like against the base's cached answers."""
    was_training = model.training
    model.eval()
    answers: list[Answer] = []
    for start in range(0, len(questions), GENERATION_BATCH):
        prompts = [user_prompt_tokens(tokenizer, q) for q in questions[start : start + GENERATION_BATCH]]
        answers += greedy_batch(model, tokenizer, prompts, max_tokens)
    model.train(was_training)
    return answers


def user_prompt_tokens(tokenizer, question: str) -> list[int]:
    return render_tokens(tokenizer, [{"role": "user", "content": question}], add_generation_prompt=True)


def replay_pool(answers: list[dict]) -> list[Record]:
    """The conversations (question, the base's answer) that can be replayed: the answers that ended."""
    return [
        Record(
            line=0,
            messages=({"role": "user", "content": a["prompt"]}, {"role": "assistant", "content": a["answer"]}),
        )
        for a in answers
        if a["ended"] and a["answer"]
    ]


def epoch_sample(pool: int, count: int, seed: int, epoch: int) -> list[int]:
    """Which of the pool's records an epoch replays: `count` of them, cycling through the pool if it is smaller."""
    if not pool or count <= 0:
        return []
    order = np.random.default_rng([seed, epoch, 0x5E7]).permutation(pool)
    return [int(order[i % pool]) for i in range(count)]
