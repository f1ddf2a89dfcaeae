"""Will a run fit in memory? Worked out before a weight is loaded.

From the model's config.json and safetensors headers, the training parameters and the
data's token counts, the run's peak is the sum of:

- the weights, at the precision training holds them: as stored on a Mac (a quantized base
  stays quantized); on Linux's CPU backend float32 when `expand_for_cpu` expands them;
- the adapter: LoRA weights, their gradients and AdamW's two moments, all float32
  (one more gradient copy when gradients accumulate);
- the activations the backward pass keeps for the **longest** batch: per token, for each
  block from the lowest adapted one up, every norm's input and output, q, k, v and the
  attention output, the MLP's four intermediates, and one attention row per head (MLX
  materialises the probabilities for the backward pass); with gradient checkpointing, each
  block's input plus one block's worth, recomputed. One more block's worth is in flight
  below the adapted ones, and the backward pass holds one block's probability gradients;
- the logits of that batch in float32, four copies alive at the peak of the loss's
  backward pass (logits, softmax, the one-hot scatter and their sum).

bench/fit.py measures predicted against measured peaks (BENCHMARKS.md). At load time,
expanding a quantized model to float32 briefly holds both copies (and MLX's CPU dequantize
one more of the layer at hand); the peak is the larger of that and training's. A GRPO run is
counted as its largest group of sampled answers trained at once; the cache its sampling
grows is not counted.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.models.store import count_tensor_parameters, expands_on_cpu, tensor_headers
from lora_tui.core.training.batching import PAD_MULTIPLE, pack_rows, padded_length
from lora_tui.core.units import counted, human_bytes

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4, "U8": 1, "I8": 1, "F64": 8, "I32": 4, "I64": 8, "BOOL": 1}
LOGIT_COPIES = 4
ADAPTER_BYTES_PER_PARAMETER = 16  # float32 weight, gradient, and AdamW's first and second moments
FOUR_BIT_BYTES_PER_PARAMETER = 0.5 + 4 / 64  # 4-bit values; a float16 scale and bias per group of 64
PROJECTION_NAME = re.compile(r"(?:^|\.)layers\.0\.(?P<module>(?:self_attn|mlp)\.\w+)\.weight$")
NORM_NAME = re.compile(r"(?:^|\.)layers\.0\.(?P<norm>[\w.]*norm\w*)\.weight$")


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model, read from its folder without loading it."""

    layers: int
    hidden: int
    intermediate: int  # per token: a mixture of experts' active experts together
    heads: int
    query_width: int  # heads x head_dim
    kv_width: int
    vocab: int
    block_norms: int  # RMSNorms per block on the hidden state (2; Gemma 3 has 4)
    head_norms: bool  # q and k normed per head (Qwen3, Gemma 3)
    projections: dict[str, tuple[int, int]]  # "self_attn.q_proj" -> (inputs, outputs)
    stored_bytes: int
    parameters: int
    quantized: bool
    half: bool  # unquantized weights in float16 or bfloat16
    largest_quantized: int = 0  # parameters of the largest quantized tensor (dequantizing it needs two copies)

    @property
    def float32_bytes(self) -> int:
        return self.parameters * 4


def read_shape(model_path: Path) -> ModelShape:
    """The model's shape from config.json and its safetensors headers."""
    model_path = Path(model_path)
    try:
        config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{model_path / 'config.json'}: cannot read the model's config ({exc}).") from None
    text = {**config, **config.get("text_config", {})}
    tensors = tensor_headers(model_path)
    bits = _quantized_bits(config)
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    experts = text.get("num_experts_per_tok") or 1
    intermediate = (text.get("moe_intermediate_size") or text["intermediate_size"]) * experts
    block_norms, head_norms = _norms(list(tensors))
    return ModelShape(
        layers=text["num_hidden_layers"],
        hidden=text["hidden_size"],
        intermediate=intermediate,
        heads=text["num_attention_heads"],
        query_width=text["num_attention_heads"] * head_dim,
        kv_width=text.get("num_key_value_heads", text["num_attention_heads"]) * head_dim,
        vocab=text["vocab_size"],
        block_norms=block_norms,
        head_norms=head_norms,
        projections=_projections(tensors, bits),
        stored_bytes=sum(_tensor_bytes(info) for info in tensors.values()),
        parameters=count_tensor_parameters(tensors, _quantization(config)),
        quantized=any(_packed(name, tensors) for name in tensors),
        half=any(info["dtype"] in ("F16", "BF16") for info in tensors.values()),
        largest_quantized=max(
            (
                _count(_unpacked_shape(name, info, tensors, bits))
                for name, info in tensors.items()
                if _packed(name, tensors)
            ),
            default=0,
        ),
    )


HEAD_NORMS = ("q_norm", "k_norm")


def _norms(names: list[str]) -> tuple[int, bool]:
    """How many RMSNorms a block has on its hidden state (2 if none are named), and whether q and k are normed."""
    found = [m["norm"].split(".")[-1] for name in names if (m := NORM_NAME.search(name))]
    return sum(norm not in HEAD_NORMS for norm in found) or 2, any(norm in HEAD_NORMS for norm in found)


def _packed(name: str, tensors: dict) -> bool:
    """A quantized weight: uint32 words of packed values, with scales beside it."""
    return tensors[name]["dtype"] == "U32" and f"{name.removesuffix('.weight')}.scales" in tensors


def _quantization(config: dict) -> dict:
    return config.get("quantization") or config.get("quantization_config") or {}


def _quantized_bits(config: dict):
    """weight name -> bits, for a quantized model's layers (the default for those not named)."""
    quantization = _quantization(config)
    default = quantization.get("bits", 4)
    return lambda name: (quantization.get(name.removesuffix(".weight")) or {}).get("bits", default)


def _count(shape) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _tensor_bytes(info: dict) -> int:
    return _count(info["shape"]) * DTYPE_BYTES.get(info["dtype"], 4)


def _unpacked_shape(name: str, info: dict, tensors: dict, bits) -> list[int]:
    shape = list(info["shape"])
    if _packed(name, tensors):
        shape[-1] = shape[-1] * 32 // bits(name)
    return shape


def _projections(tensors: dict, bits) -> dict[str, tuple[int, int]]:
    found = {}
    for name, info in tensors.items():
        matched = PROJECTION_NAME.search(name)
        if matched and len(info["shape"]) == 2:
            outputs, inputs = _unpacked_shape(name, info, tensors, bits)
            found[matched["module"]] = (inputs, outputs)
    return found


@dataclass(frozen=True)
class LongestBatch:
    rows: int
    width: int  # input positions per row (padded)
    logit_width: int  # positions whose logits are computed

    @property
    def tokens(self) -> int:
        return self.rows * self.width


def longest_batch(params, lengths: list[int]) -> LongestBatch:
    """The heaviest micro-batch the run will train on, from the records' token counts (for pairs, the prompt
    with the longer answer; for GRPO prompts, the prompt)."""
    longest = min(max(lengths, default=1), params.max_seq_length)
    if params.method == "grpo":
        width = padded_length(longest + params.completion_length) - 1
        # Its logits: from the last multiple of PAD_MULTIPLE before the answers (methods/grpo.py).
        return LongestBatch(params.group_size, width, width - longest // PAD_MULTIPLE * PAD_MULTIPLE)
    width = padded_length(longest) - 1
    if params.pack:
        rows = min(params.batch_size, _packed_rows(lengths, min(params.max_seq_length, width + 1)))
    else:
        rows = min(params.batch_size, max(len(lengths), 1))
    if params.method in ("dpo", "orpo"):  # a micro-batch holds chosen and rejected rows of its pairs
        rows = 2 * rows if rows % 2 else rows
    return LongestBatch(rows, width, width)


def _packed_rows(lengths: list[int], capacity: int) -> int:
    """Rows the packer makes (ties broken differently change which records share a row, not how many)."""
    import numpy as np

    return max(1, len(pack_rows([min(n, capacity) for n in lengths], capacity, np.random.default_rng(0))))


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    adapter: int
    activations: int
    logits: int
    loading: int  # the peak while the weights load (both copies when expanded)
    batch: LongestBatch
    precision: str  # "float32", "16-bit" or "quantized": how training holds the weights

    @property
    def training(self) -> int:
        return self.weights + self.adapter + self.activations + self.logits

    @property
    def total(self) -> int:
        return max(self.training, self.loading)

    def describe(self) -> str:
        return (
            f"about {human_bytes(self.total)}: weights {human_bytes(self.weights)} ({self.precision}), "
            f"adapter and optimizer {human_bytes(self.adapter)}, activations {human_bytes(self.activations)} "
            f"and logits {human_bytes(self.logits)} for the longest batch "
            f"({self.batch.rows} x {self.batch.width} tokens)"
        )

    def to_json(self) -> dict:
        return {
            "total_bytes": self.total,
            "weights_bytes": self.weights,
            "adapter_bytes": self.adapter,
            "activations_bytes": self.activations,
            "logits_bytes": self.logits,
            "loading_bytes": self.loading,
            "precision": self.precision,
            "rows": self.batch.rows,
            "width": self.batch.width,
        }


def estimate_memory(shape: ModelShape, params, lengths: list[int], on_cpu: bool | None = None) -> MemoryEstimate:
    """The run's peak memory, predicted (see the module's docstring)."""
    on_cpu = _on_cpu() if on_cpu is None else on_cpu
    expands = on_cpu and expands_on_cpu(shape.quantized, shape.half, shape.float32_bytes)
    if expands or not (shape.quantized or shape.half):
        weights, precision, element = shape.float32_bytes, "float32", 4
    else:
        weights, element = shape.stored_bytes, 2
        precision = "quantized" if shape.quantized else "16-bit"
    batch = longest_batch(params, lengths)
    adapted_layers = shape.layers if params.num_layers == -1 else min(params.num_layers, shape.layers)
    block = _block_elements(shape, batch.width)
    # With checkpointing each block keeps its input; one block is recomputed and one is in flight.
    kept = adapted_layers * shape.hidden + 2 * block if params.grad_checkpoint else (adapted_layers + 1) * block
    # Beside them: the final norm's input and output, and the gradient of one block's attention probabilities.
    activations = batch.tokens * (kept + 2 * shape.hidden + shape.heads * batch.width) * element
    logits = batch.rows * batch.logit_width * shape.vocab * 4 * LOGIT_COPIES
    # Dequantizing layer by layer holds both copies, and MLX's CPU dequantize one more of the layer at hand.
    loading = shape.stored_bytes + weights + shape.largest_quantized * 4 if expands else weights
    return MemoryEstimate(
        weights=weights,
        adapter=_adapter_bytes(shape, params, adapted_layers),
        activations=activations,
        logits=logits,
        loading=loading,
        batch=batch,
        precision=precision,
    )


def _block_elements(shape: ModelShape, width: int) -> int:
    """Values per token one block keeps for the backward pass."""
    norms = 2 * shape.block_norms * shape.hidden + (shape.query_width + shape.kv_width if shape.head_norms else 0)
    attention = 2 * shape.query_width + 2 * shape.kv_width + shape.heads * width
    return norms + attention + 4 * shape.intermediate


def _adapter_bytes(shape: ModelShape, params, adapted_layers: int) -> int:
    from lora_tui.core.training.params import MODULE_KEYS

    per_layer = 0
    for module in params.target_modules:
        inputs, outputs = shape.projections.get(MODULE_KEYS[module], (0, 0))
        per_layer += params.rank * (inputs + outputs) + (outputs if params.fine_tune_type == "dora" else 0)
    per_parameter = ADAPTER_BYTES_PER_PARAMETER + (4 if params.grad_accumulation_steps > 1 else 0)
    return per_layer * adapted_layers * per_parameter


def _on_cpu() -> bool:
    import mlx.core as mx

    return mx.default_device() == mx.cpu


@dataclass(frozen=True)
class Budget:
    bytes: int
    source: str  # what the figure is


def memory_budget() -> Budget | None:
    """What this machine can give MLX now: Metal's recommended working set on a Mac, available memory on
    Linux's CPU backend; None where neither applies or can be read (another GPU backend: no check)."""
    import mlx.core as mx

    if mx.default_device() != mx.cpu and not mx.metal.is_available():
        return None
    if mx.metal.is_available():
        working_set = int(mx.device_info().get("max_recommended_working_set_size", 0))
        return Budget(working_set, "Metal's recommended working set") if working_set else None
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return Budget(int(line.split()[1]) * 1024, "available memory")
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class Fix:
    """Parameter values that make the run fit, and what it then needs."""

    values: dict
    needs: int
    cost: str = ""  # what it gives up, when that is not plain: "cuts 12 records"

    def describe(self) -> str:
        cost = f", {self.cost}" if self.cost else ""
        return f"{_flags(self.values)} (about {human_bytes(self.needs)}{cost})"


class DoesNotFit(UserError):
    """A run that would not fit: the estimate, the budget, and what would make it fit."""

    def __init__(self, estimate: MemoryEstimate, budget: Budget, fixes: list[Fix], four_bit: int | None) -> None:
        self.estimate, self.budget, self.fixes = estimate, budget, fixes
        ways = [fix.describe() for fix in fixes]
        if four_bit is not None:
            ways.append(f"a 4-bit base, e.g. from `mlx_lm.convert -q` (about {human_bytes(four_bit)})")
        advice = f" It fits with {'; or '.join(ways)}." if ways else " No smaller setting of this run fits."
        super().__init__(
            f"This run needs {estimate.describe()}; this machine can give {human_bytes(budget.bytes)} "
            f"({budget.source}).{advice}"
        )


def _flags(values: dict) -> str:
    shown = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        shown.append(flag if value is True else f"{flag} {value}")
    return " ".join(shown)


def check_fit(shape: ModelShape, params, lengths: list[int], budget: Budget | None) -> MemoryEstimate:
    """The estimate; DoesNotFit when it is over the budget."""
    estimate = estimate_memory(shape, params, lengths)
    if budget is None or estimate.total <= budget.bytes:
        return estimate
    fixes = find_fixes(shape, params, lengths, budget.bytes)
    four_bit = None
    if not shape.quantized and not _on_cpu():
        smaller = replace(shape, stored_bytes=int(shape.parameters * FOUR_BIT_BYTES_PER_PARAMETER), quantized=True)
        needs = estimate_memory(smaller, params, lengths).total
        four_bit = needs if needs <= budget.bytes else None
    raise DoesNotFit(estimate, budget, fixes, four_bit)


def find_fixes(shape: ModelShape, params, lengths: list[int], budget: int, on_cpu: bool | None = None) -> list[Fix]:
    """The changes of one setting (or two, with gradient checkpointing) that bring the run under `budget`:
    gradient checkpointing; the largest batch size that fits (accumulating gradients to keep the batch);
    the largest max sequence length that fits."""
    from lora_tui.core.training.params import PARAMS_BY_NAME, build_params

    most_steps = int(PARAMS_BY_NAME["grad_accumulation_steps"].high)

    def needs(values: dict) -> int:
        return estimate_memory(shape, build_params({**params.to_json(), **values}), lengths, on_cpu).total

    def first_that_fits(candidates) -> Fix | None:
        for values in candidates:
            if (needed := needs(values)) <= budget:
                return Fix(values, needed)
        return None

    checkpointing = {"grad_checkpoint": True}
    if not params.grad_checkpoint and (alone := first_that_fits([checkpointing])):
        bases, fixes = [{}], [alone]
    else:
        bases, fixes = [{}] if params.grad_checkpoint else [{}, checkpointing], []
    longest = min(max(lengths, default=1), params.max_seq_length)
    for base in bases:
        records_per_step = params.batch_size * params.grad_accumulation_steps
        smaller_batch = first_that_fits(
            {**base, "batch_size": size, "grad_accumulation_steps": min(-(-records_per_step // size), most_steps)}
            for size in range(params.batch_size - 1, 0, -1)
        )
        shorter = first_that_fits(
            {**base, "max_seq_length": length}
            for length in range((longest - 1) // PAD_MULTIPLE * PAD_MULTIPLE, PAD_MULTIPLE - 1, -PAD_MULTIPLE)
        )
        if shorter is not None:
            length = shorter.values["max_seq_length"]
            shorter = replace(
                shorter, cost=f"cuts {counted(sum(n > length for n in lengths), 'record')} to {length} tokens"
            )
        fixes += [fix for fix in (smaller_batch, shorter) if fix is not None]
        if fixes:
            break
    return fixes


def training_lengths(model_path: Path, data: Path, columns: dict[str, str] | None = None) -> list[int]:
    """Token counts of the training records, as training will tokenize them (the model's tokenizer)."""
    from lora_tui.core.data.records import dataset_files, load_records
    from lora_tui.core.data.tokens import load_token_counter

    counter = load_token_counter(Path(model_path))
    return [counter.count(record) for record in load_records(dataset_files(Path(data))["train"], columns)]


def check_run_fits(
    model_path: Path, params, data: Path, columns: dict[str, str] | None = None, ranks: int = 1
) -> MemoryEstimate | None:
    """Before anything loads: the run's predicted peak, refused (DoesNotFit) when this machine cannot give it;
    None for a config this estimate cannot read (a layout without the usual sizes). With several ranks, the
    peak of one (its share of each batch), not checked: the ranks' machines are not this one."""
    from lora_tui.core.training.params import build_params

    try:
        shape = read_shape(model_path)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    lengths = training_lengths(model_path, data, columns)
    if ranks > 1:
        share = build_params({**params.to_json(), "batch_size": -(-params.batch_size // ranks)})
        return estimate_memory(shape, share, lengths)
    return check_fit(shape, params, lengths, memory_budget())
