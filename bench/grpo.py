"""GRPO: lora-tui against mlx-lm-lora (the reference), the same prompts, group, answer length and steps, one run.

Each side trains in its own process (so each peak memory is its own) on the demo prompts
(`lora-tui data demo --grpo`, each with SmolLM2's own default system prompt so both render the same
prompt), the demo model in float32 (MLX's CPU backend has no fast quantized kernels; both dequantize
it the same way), LoRA rank 16 on q, k, v, o of the last 16 layers, batch 4 prompts x group 4 answers
of at most 16 tokens, temperature 1, learning rate 3e-4, KL beta 0.1, the grpo loss, and the same two
rewards (exact, length:10). mlx-lm-lora keeps a second copy of the model as the reference (as its
CLI does); lora-tui reads the reference from the same model with the LoRA switched off.
mlx-lm-lora's sampler is set to plain temperature sampling (top-p 1, top-k 0) like lora-tui's.

Steps per second are measured over the steps after the first WARMUP_STEPS (compilation).

    python bench/grpo.py [--steps N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlx_lm_lora_setup import policy_and_reference
from report import write_section

WARMUP_STEPS = 2
BATCH, GROUP, ANSWER_TOKENS, RANK, LEARNING_RATE, BETA, MAX_SEQ = 4, 4, 16, 16, 3e-4, 0.1, 128
KEYS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
BREVITY = 10


def exact(completion: str, answer: str) -> float:
    return float(completion.strip() == answer.strip())


def lora_tui_side(model: Path, data: Path, steps: int) -> dict:
    import mlx.core as mx

    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.loop import run_training
    from lora_tui.core.training.params import build_params

    prompts = len((data / "train.jsonl").read_text().splitlines())
    values = {"method": "grpo", "rewards": ["exact", f"length:{BREVITY}"], "rank": RANK, "batch_size": BATCH}
    values |= {"group_size": GROUP, "completion_length": ANSWER_TOKENS, "temperature": 1.0, "kl_beta": BETA}
    values |= {"learning_rate": LEARNING_RATE, "max_seq_length": MAX_SEQ, "epochs": -(-steps * BATCH // prompts)}
    values |= {"target_modules": ["q", "k", "v", "o"], "lr_schedule": "constant", "steps_per_eval": 10**5}
    seconds = []
    mx.reset_peak_memory()
    with tempfile.TemporaryDirectory() as scratch:
        job = TrainingJob(model, data, Path(scratch) / "grpo", build_params(values))
        run_training(job, lambda e: seconds.append(1 / e.iterations_per_second) if e.type == "step" else None)
    timed = seconds[WARMUP_STEPS:steps]
    return {"steps_per_second": len(timed) / sum(timed), "peak_bytes": mx.get_peak_memory()}


def mlx_lm_lora_side(model_path: Path, data: Path, steps: int) -> dict:
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm_lora.trainer.datasets import GRPODataset
    from mlx_lm_lora.trainer.grpo_trainer import GRPOTrainingArgs, train_grpo

    model, reference, tokenizer = policy_and_reference(model_path, RANK, KEYS)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]

    def exact_reward(prompts, completions, answer, types=None):
        return [exact(c, a) for c, a in zip(completions, answer, strict=True)]

    def length_reward(prompts, completions, answer, types=None):
        return [-max(0, len(tokenizer.encode(c)) + 1 - BREVITY) / BREVITY for c in completions]

    seconds, last = [], [time.perf_counter()]

    class Timer(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            now = time.perf_counter()
            seconds.append(now - last[0])
            last[0] = now

    with tempfile.TemporaryDirectory() as scratch:
        args = GRPOTrainingArgs(
            batch_size=BATCH,
            iters=steps,
            steps_per_report=1,
            steps_per_eval=10**9,
            steps_per_save=10**9,
            max_seq_length=MAX_SEQ,
            adapter_file=str(Path(scratch) / "adapters.safetensors"),
            group_size=GROUP,
            max_completion_length=ANSWER_TOKENS,
            beta=BETA,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
        )
        train_set = GRPODataset(rows, tokenizer)
        optimizer = optim.Adam(learning_rate=LEARNING_RATE)
        train_grpo(
            model,
            reference,
            tokenizer,
            optimizer,
            train_set,
            None,
            reward_funcs=[exact_reward, length_reward],
            args=args,
            training_callback=Timer(),
        )
    timed = seconds[WARMUP_STEPS:]
    return {"steps_per_second": len(timed) / sum(timed), "peak_bytes": mx.get_peak_memory()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--side", choices=("lora-tui", "mlx-lm-lora"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side = lora_tui_side if args.side == "lora-tui" else mlx_lm_lora_side
        print(json.dumps(side(Path(args.model), Path(args.data), args.steps)))
        return
    from lora_tui.core.data.demo import demo_grpo
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "prompts"
        data.mkdir()
        rows = [{**row, "system": SYSTEM} for row in demo_grpo("train")]
        (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        for side in ("mlx-lm-lora", "lora-tui"):
            command = [sys.executable, __file__, "--side", side, "--model", str(model), "--data", str(data)]
            output = subprocess.run([*command, "--steps", str(args.steps)], capture_output=True, text=True, check=True)
            results[side] = json.loads(output.stdout.strip().splitlines()[-1])
            print(side, results[side], flush=True)
    ours, theirs = results["lora-tui"], results["mlx-lm-lora"]
    speed = ours["steps_per_second"] / theirs["steps_per_second"]
    memory = ours["peak_bytes"] / theirs["peak_bytes"]
    body = f"""
`python bench/grpo.py`: {model.name} in float32, the demo prompts (opposites) with SmolLM2's default
system prompt, {args.steps} GRPO steps of {BATCH} prompts x {GROUP} sampled answers of at most {ANSWER_TOKENS} tokens
(the first {WARMUP_STEPS} left out of the timing), temperature 1, LoRA rank {RANK} on q, k, v, o,
learning rate {LEARNING_RATE}, KL beta {BETA}, rewards exact and length:{BREVITY}; each tool in its own
process. mlx-lm-lora 5.10.2 keeps a second copy of the model as the reference (as its CLI does); lora-tui
switches the LoRA off for the reference pass. A step: sample the answers (batched, KV cache), score them,
the reference pass, one update. lora-tui trains each group as its own micro-batch (one group's
activations at a time, the same update), takes logits only from the last multiple of 32 positions
before the answers, and lets the sampling KV cache grow by what the answers need, not 256 positions.

| | steps/s | peak memory |
|---|---|---|
| mlx-lm-lora | {theirs["steps_per_second"]:.3f} | {theirs["peak_bytes"] / 2**30:.2f} GiB |
| lora-tui | {ours["steps_per_second"]:.3f} | {ours["peak_bytes"] / 2**30:.2f} GiB |
| lora-tui / mlx-lm-lora | {speed:.2f}x (target > 1) | {memory:.2f}x (target <= 0.6) |
"""
    write_section("Reinforcement learning: GRPO (bench/grpo.py)", body)


if __name__ == "__main__":
    main()
