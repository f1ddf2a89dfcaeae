"""Will it fit: the memory lora-tui predicts before loading, against the peak a trial measures.

For the demo model and Gemma 3 270M (imported from its Q4_K_M file) at three batch sizes
(and one with gradient checkpointing), on chat records of mixed length: the prediction of
core/training/fit.py (config, safetensors headers and token counts; nothing loaded), then
`train --estimate`'s trial (its first step on the longest batch), each point in a fresh
process so that loading's peak counts once, as in a real run. Then the same formula for a
7B model at 4 bits on a Mac, from its config alone.

    python bench/fit.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from report import write_section

WORDS = ("the", "river", "stone", "cloud", "seven", "orange", "window", "music", "paper", "lamp", "garden", "winter")
POINTS = [
    ("demo", {"batch_size": 1}),
    ("demo", {"batch_size": 4}),
    ("demo", {"batch_size": 8}),
    ("demo", {"batch_size": 8, "grad_checkpoint": True}),
    ("gemma", {"batch_size": 1}),
    ("gemma", {"batch_size": 2}),
    ("gemma", {"batch_size": 4}),
    ("gemma", {"batch_size": 4, "grad_checkpoint": True}),
]
TABLE_HEAD = (
    "| model | longest batch (rows x tokens) | grad checkpoint | weights MB | activations MB | logits MB "
    "| loading MB | predicted MB | measured MB | predicted / measured |\n|---|---|---|---|---|---|---|---|---|---|"
)
# Mistral 7B v0.3's config.json (the sizes the estimate reads), quantized to 4 bits with mlx_lm.convert -q.
SEVEN_B = {
    "layers": 32,
    "hidden": 4096,
    "intermediate": 14336,
    "heads": 32,
    "query_width": 4096,
    "kv_width": 1024,
    "vocab": 32768,
    "parameters": 7_248_023_552,
}


def write_records(path: Path) -> None:
    """56 conversations: most with short answers, a few long (the longest batch is theirs)."""
    rng = random.Random(0)
    lines = []
    for index in range(56):
        words = 240 if index % 8 == 0 else rng.randint(20, 80)
        answer = " ".join(rng.choice(WORDS) for _ in range(words))
        messages = [{"role": "user", "content": f"Tell me story {index}."}, {"role": "assistant", "content": answer}]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")


def measure_point(model: str, data: str, values: str) -> None:
    """In this process: the prediction, then the trial; one JSON line."""
    from lora_tui.core.training.estimate import estimate_run
    from lora_tui.core.training.fit import estimate_memory, read_shape, training_lengths
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.params import build_params

    params = build_params({"epochs": 1, "max_seq_length": 1024, **json.loads(values)})
    predicted = estimate_memory(read_shape(Path(model)), params, training_lengths(Path(model), Path(data)))
    job = TrainingJob(Path(model), Path(data), Path(tempfile.mkdtemp()) / "trial", params)
    measured = estimate_run(job)
    print(json.dumps({"predicted": predicted.to_json(), "measured": measured.peak_memory_bytes}))


def gemma_model(scratch: Path) -> Path:
    from conftest import GEMMA_CACHE
    from gemmafile import gemma_gguf_file

    from lora_tui.core.models.gguf_import import import_gguf

    return import_gguf(gemma_gguf_file(GEMMA_CACHE), scratch / "models", "gemma3-270m", log=lambda line: None)


def seven_b() -> tuple[list[str], str]:
    """The formula's rows for the 7B model, and the fixes it offers for 4 x 512 tokens on a 10 GB budget."""
    from lora_tui.core.training.fit import FOUR_BIT_BYTES_PER_PARAMETER, ModelShape, estimate_memory, find_fixes
    from lora_tui.core.training.params import build_params

    projections = {
        "self_attn.q_proj": (4096, 4096),
        "self_attn.k_proj": (4096, 1024),
        "self_attn.v_proj": (4096, 1024),
        "self_attn.o_proj": (4096, 4096),
    }
    shape = ModelShape(
        **SEVEN_B,
        block_norms=2,
        head_norms=False,
        projections=projections,
        stored_bytes=int(SEVEN_B["parameters"] * FOUR_BIT_BYTES_PER_PARAMETER),
        quantized=True,
        half=False,
    )
    rows = []
    for batch_size, length, checkpoint in [(1, 512, False), (4, 512, False), (4, 2048, False), (4, 2048, True)]:
        params = build_params({"batch_size": batch_size, "max_seq_length": length, "grad_checkpoint": checkpoint})
        e = estimate_memory(shape, params, [length] * batch_size, on_cpu=False)
        rows.append(
            f"| {batch_size} x {e.batch.width} | {'on' if checkpoint else 'off'} | {e.weights / 1e9:.2f} "
            f"| {e.adapter / 1e9:.3f} | {e.activations / 1e9:.2f} | {e.logits / 1e9:.2f} | **{e.total / 1e9:.1f}** |"
        )
    params = build_params({"batch_size": 4, "max_seq_length": 512})
    fixes = find_fixes(shape, params, [512] * 64, 10 * 10**9, on_cpu=False)
    return rows, "; or ".join(fix.describe() for fix in fixes)


def main() -> None:
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        models = {
            "demo": ensure_demo_model(locations.models_dir, locations.cache_dir, log=print),
            "gemma": gemma_model(Path(scratch)),
        }
        data = Path(scratch) / "stories.jsonl"
        write_records(data)
        for model, values in POINTS:
            point = [sys.executable, __file__, "--point", str(models[model]), str(data), json.dumps(values)]
            done = subprocess.run(point, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            predicted, measured = result["predicted"], result["measured"]
            ratio = predicted["total_bytes"] / measured
            checkpoint = "on" if values.get("grad_checkpoint") else "off"
            rows.append(
                f"| {models[model].name} | {predicted['rows']} x {predicted['width']} | {checkpoint} "
                f"| {predicted['weights_bytes'] / 1e6:.0f} | {predicted['activations_bytes'] / 1e6:.0f} "
                f"| {predicted['logits_bytes'] / 1e6:.0f} | {predicted['loading_bytes'] / 1e6:.0f} "
                f"| **{predicted['total_bytes'] / 1e6:.0f}** | **{measured / 1e6:.0f}** | {ratio:.2f} |"
            )
            print(rows[-1], flush=True)
    seven_rows, seven_fixes = seven_b()
    body = f"""
`python bench/fit.py`: the peak memory lora-tui predicts before a run loads anything
(core/training/fit.py: config.json, safetensors headers, the records' token counts) against the peak
MLX reports in `train --estimate`'s trial (4 real steps, the first on the longest batch), each point
in a fresh process. Data: 56 chat records, 7 of them about 250 tokens, the rest 30-100; max sequence
length 1024, LoRA rank 8 on q, k, v, o of the last 16 blocks (the defaults). On this CPU both models
are expanded to float32 (MLX's CPU backend has no fast quantized kernels), so the weights are 4 bytes
a parameter and loading briefly holds the quantized and float32 copies; a run's peak is the larger
of loading and training. mlx-lm has no estimate to compare against: the measured peak is the reference.

{TABLE_HEAD}
{chr(10).join(rows)}

Gemma's 262,144-token vocabulary makes its logits the largest term: 4 float32 copies of rows x
tokens x vocabulary are alive at the peak of the loss's backward pass (logits, softmax, the
one-hot scatter, their sum), 1 GB for 2 rows of 256 tokens.

### The formula, for a 7B model at 4 bits on a Mac

Mistral 7B v0.3 (32 blocks, hidden 4096, MLP 14336, 32 heads, 8 KV heads of 128, vocabulary 32,768),
quantized to 4 bits (0.5625 bytes a parameter with a float16 scale and bias per group of 64), with
the default LoRA (rank 8 on q, k, v, o of the last 16 blocks), computing in float16 on Metal:

- weights: 7.25 B parameters x 0.5625 = 4.08 GB (kept quantized);
- adapter: rank x (inputs + outputs) per projection x 16 blocks = 3.4 M parameters, x 16 bytes
  (float32 weight, gradient, AdamW's two moments) = 0.05 GB;
- activations, per token, for each block from the lowest adapted one (17 with the one in flight):
  2 norms x 2 x 4096 + 2 x 4096 (q, attention output) + 2 x 1024 (k, v) + 4 x 14336 (MLP)
  + 32 heads x the row length (attention probabilities) values, x 2 bytes; with checkpointing,
  4096 values per block plus two blocks' worth; beside them the final norm (2 x 4096) and one
  block's probability gradients (32 x the row length);
- logits: rows x tokens x 32,768 x 4 bytes x 4 copies.

| batch (rows x tokens) | grad checkpoint | weights GB | adapter GB | activations GB | logits GB | total GB |
|---|---|---|---|---|---|---|
{chr(10).join(seven_rows)}

These figures are the formula's, not measured: this workplace has no Mac. It assumes MLX keeps
the attention probabilities for the backward pass on Metal as it does on the CPU; where its fused
attention has a backward kernel of its own, that term is smaller and the estimate errs high.

On a machine that can give MLX 10 GB, the 4 x 512 run is refused before loading, with what fits:
{seven_fixes}.
"""
    write_section("Will it fit: predicted and measured peak memory (bench/fit.py)", body)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--point":
        measure_point(*sys.argv[2:5])
    else:
        main()
