"""DPO: lora-tui against mlx-lm-lora (the reference), the same pairs, steps, rank and batch, one run.

Each side trains in its own process (so each peak memory is its own) on the demo pairs
(`lora-tui data demo --pairs`), the demo model in float32 (MLX's CPU backend has no fast
quantized kernels; both dequantize it the same way), LoRA rank 8 on q, k, v, o of the last
16 layers, batch 4, learning rate 2e-4, beta 0.1, sigmoid loss. mlx-lm-lora keeps a second
copy of the model as the reference; lora-tui computes the reference log-probabilities once
before training, and runs each batch of pairs in two halves (the loss is a mean over pairs, so the
halves' gradients add up to the same update). mlx-lm-lora's trainer reads `max_recommended_working_set_size` from
`mx.device_info()`, which MLX's CPU backend lacks: this bench supplies it.

Pairs per second are measured over the steps after the first WARMUP_STEPS (compilation).

    python bench/dpo.py [--steps N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlx_lm_lora_setup import policy_and_reference
from report import write_section

WARMUP_STEPS = 2
BATCH, RANK, LEARNING_RATE, BETA, MAX_SEQ = 4, 8, 2e-4, 0.1, 128
KEYS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]


def lora_tui_side(model: Path, data: Path, steps: int) -> dict:
    import mlx.core as mx

    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.loop import run_training
    from lora_tui.core.training.params import build_params

    pairs = len((data / "train.jsonl").read_text().splitlines())
    epochs = -(-steps * BATCH // pairs)
    values = {"method": "dpo", "rank": RANK, "batch_size": BATCH, "learning_rate": LEARNING_RATE, "beta": BETA}
    values |= {"max_seq_length": MAX_SEQ, "epochs": epochs, "chosen_nll": 0.0, "target_modules": ["q", "k", "v", "o"]}
    seconds = []
    mx.reset_peak_memory()
    with tempfile.TemporaryDirectory() as scratch:
        job = TrainingJob(model, data, Path(scratch) / "dpo", build_params(values))
        run_training(job, lambda e: seconds.append(1 / e.iterations_per_second) if e.type == "step" else None)
    timed = seconds[WARMUP_STEPS:steps]
    return {"pairs_per_second": BATCH * len(timed) / sum(timed), "peak_bytes": mx.get_peak_memory()}


def mlx_lm_lora_side(model_path: Path, data: Path, steps: int) -> dict:
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm_lora.trainer.datasets import CacheDataset, DPODataset
    from mlx_lm_lora.trainer.dpo_trainer import DPOTrainingArgs, train_dpo

    model, reference, tokenizer = policy_and_reference(model_path, RANK, KEYS)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    seconds = []

    class Timer(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            seconds.append(1 / info["iterations_per_second"])

    with tempfile.TemporaryDirectory() as scratch:
        args = DPOTrainingArgs(
            batch_size=BATCH,
            iters=steps,
            steps_per_report=1,
            steps_per_eval=10**9,
            steps_per_save=10**9,
            max_seq_length=MAX_SEQ,
            adapter_file=str(Path(scratch) / "adapters.safetensors"),
            beta=BETA,
        )
        train_set = CacheDataset(DPODataset(rows, tokenizer))
        optimizer = optim.AdamW(learning_rate=LEARNING_RATE)
        train_dpo(model, reference, optimizer, train_set, None, args, training_callback=Timer(), loss_type="sigmoid")
    timed = seconds[WARMUP_STEPS:]
    return {"pairs_per_second": BATCH * len(timed) / sum(timed), "peak_bytes": mx.get_peak_memory()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--side", choices=("lora-tui", "mlx-lm-lora"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side = lora_tui_side if args.side == "lora-tui" else mlx_lm_lora_side
        print(json.dumps(side(Path(args.model), Path(args.data), args.steps)))
        return
    from lora_tui.core.data.demo import write_demo_pairs
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "pairs"
        write_demo_pairs(data)
        for side in ("mlx-lm-lora", "lora-tui"):
            command = [sys.executable, __file__, "--side", side, "--model", str(model), "--data", str(data)]
            output = subprocess.run([*command, "--steps", str(args.steps)], capture_output=True, text=True, check=True)
            results[side] = json.loads(output.stdout.strip().splitlines()[-1])
            print(side, results[side], flush=True)
    ours, theirs = results["lora-tui"], results["mlx-lm-lora"]
    speed = ours["pairs_per_second"] / theirs["pairs_per_second"]
    memory = ours["peak_bytes"] / theirs["peak_bytes"]
    body = f"""
`python bench/dpo.py`: {model.name} in float32, the demo pairs, {args.steps} DPO steps of {BATCH} pairs (the
first {WARMUP_STEPS} left out of the timing), LoRA rank {RANK} on q, k, v, o, learning rate {LEARNING_RATE}, beta
{BETA}, sigmoid loss; each tool in its own process. mlx-lm-lora 5.10.2 keeps a second copy of the model as
the reference; lora-tui computes the reference log-probabilities once, before training (included in its peak),
and runs each batch of pairs in two halves whose gradients add up to the same update (half the activations).

| | pairs/s | peak memory |
|---|---|---|
| mlx-lm-lora | {theirs["pairs_per_second"]:.2f} | {theirs["peak_bytes"] / 2**30:.2f} GiB |
| lora-tui | {ours["pairs_per_second"]:.2f} | {ours["peak_bytes"] / 2**30:.2f} GiB |
| lora-tui / mlx-lm-lora | {speed:.2f}x (target >= 1) | {memory:.2f}x (target <= 0.6) |
"""
    write_section("Preference tuning: DPO (bench/dpo.py)", body)


if __name__ == "__main__":
    main()
