"""Training parameters: one table of ranges, defaults and help.

The same table feeds the `lora-tui train` flags (kebab case), the TOML config
file (`--config`, snake case keys) and the Train screen's form.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.data.columns import parse_columns
from lora_tui.core.errors import UserError
from lora_tui.core.toml import read_toml, to_toml
from lora_tui.core.training.rewards import absolute_reward_files, check_rewards, split_rewards

SEPARATE_PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")  # llama, qwen, mistral, gemma
TARGET_MODULES = (*SEPARATE_PROJECTIONS, "qkv", "gate_up")
MODULE_KEYS = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
    "qkv": "self_attn.qkv_proj",  # Phi-3's fused attention projection
    "gate_up": "mlp.gate_up_proj",  # and its fused MLP one
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int, float, bool, str or list
    default: object
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # None allowed (means "decide from the data / other params")
    shape: str = ""  # what a text value looks like, where it is not a file name
    check: Callable[[str], object] | None = None  # raises UserError for a text value of the wrong shape
    split: Callable[[str], list[str]] | None = None  # a list parameter's text into items (default: at commas)
    normalise: Callable[[object], object] | None = None  # the checked value as it is kept (e.g. absolute paths)
    repeated_flag: str = ""  # a list parameter given as a repeatable flag (--reward A --reward B)

    @property
    def flag(self) -> str:
        return "--" + (self.repeated_flag or self.name).replace("_", "-")

    @property
    def label(self) -> str:
        """The name in words, as the form shows it and messages say it ("learning rate")."""
        return self.name.replace("_", " ")

    @property
    def range_text(self) -> str:
        if self.choices:
            return ", ".join(self.choices)
        if self.low is not None:
            return f"{_number(self.low)}-{_number(self.high)}"
        return self.shape or {bool: "on/off", str: "a file"}.get(self.kind, "")

    def parse(self, value):
        """A value from a flag, a form field or a TOML file -> checked value ("auto" is no value, where allowed)."""
        if self.optional and isinstance(value, str) and value.strip().lower() == "auto":
            value = None
        if value is None:
            if self.optional:
                return None
            raise UserError(f"{self.label} needs a value ({self.range_text}).")
        try:
            value = self._convert(value)
        except (TypeError, ValueError):
            raise UserError(f"{self.label} must be {_kind_word(self.kind)} (got {value!r}).") from None
        self._check(value)
        return self.normalise(value) if self.normalise else value

    def _convert(self, value):
        if self.kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                    raise ValueError(value)
                return lowered in ("true", "yes", "on", "1")
            if not isinstance(value, bool):
                raise TypeError(value)
            return value
        if self.kind is list:
            split = self.split or (lambda text: text.split(","))
            items = split(value) if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise TypeError(value)
            return [str(item).strip() for item in items if str(item).strip()]
        if self.kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError(value)
            return int(value)
        if self.kind is float:
            if isinstance(value, bool):
                raise TypeError(value)
            return float(value)
        return str(value).strip()

    def _check(self, value) -> None:
        if self.check is not None:
            self.check(value)
        elif self.kind is list:
            unknown = [item for item in value if item not in self.choices]
            if unknown or not value:
                raise UserError(
                    f"{self.label}: choose one or more of {', '.join(self.choices)} (got {', '.join(value) or 'none'})."
                )
        elif self.choices and value not in self.choices:
            raise UserError(f"{self.label}: {value!r} is not one of {', '.join(self.choices)}.")
        elif (
            self.low is not None
            and not (self.low <= value <= self.high)
            and not (self.name == "num_layers" and value == -1)
        ):
            raise UserError(
                f"{self.label} must be between {_number(self.low)} and {_number(self.high)} (got {_number(value)})."
            )


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _kind_word(kind: type) -> str:
    return {int: "a whole number", float: "a number", bool: "on or off", list: "a list", str: "text"}[kind]


PARAMS: tuple[Param, ...] = (
    Param("rank", int, 8, "LoRA rank: size of the low-rank update; higher learns more, costs more.", 4, 128),
    Param(
        "alpha",
        float,
        None,
        "LoRA alpha; the update is scaled by alpha/rank (default 2 x rank).",
        1,
        1024,
        optional=True,
    ),
    Param("dropout", float, 0.0, "Dropout on the LoRA input; 0.05-0.1 helps small datasets.", 0.0, 0.5),
    Param("learning_rate", float, 1e-4, "Peak learning rate of the optimizer.", 1e-5, 1e-2),
    Param("epochs", int, 3, "Passes over the training data.", 1, 50),
    Param("batch_size", int, 4, "Records (or packed rows) per step.", 1, 32),
    Param("num_layers", int, 16, "Transformer blocks to adapt, counted from the last; -1 for all.", 1, 512),
    Param(
        "target_modules",
        list,
        ["q", "k", "v", "o"],
        "Projections that get LoRA: q, k, v, o, gate, up, down (Phi-3: qkv, o, gate_up, down).",
        choices=TARGET_MODULES,
    ),
    Param("max_seq_length", int, 2048, "Longest sequence in tokens; longer records are truncated.", 32, 32768),
    Param(
        "lr_schedule",
        str,
        "cosine",
        "How the learning rate changes after warm-up.",
        choices=("constant", "linear", "cosine"),
    ),
    Param("warmup_steps", int, 0, "Steps of linear warm-up from 0 to the learning rate.", 0, 100000),
    Param("optimizer", str, "adamw", "Optimizer.", choices=("adam", "adamw")),
    Param("weight_decay", float, 0.01, "Weight decay (AdamW only).", 0.0, 1.0),
    Param("max_grad_norm", float, 1.0, "Clip gradients to this global norm; 0 turns clipping off.", 0.0, 100.0),
    Param("grad_accumulation_steps", int, 1, "Micro-batches summed before each optimizer step.", 1, 128),
    Param("mask_prompt", bool, None, "Train only on responses (default: on when the data has prompts).", optional=True),
    Param(
        "pack",
        bool,
        False,
        "Pack several records into each row, each attending only to itself.",
    ),
    Param(
        "grad_checkpoint",
        bool,
        False,
        "Recompute activations in the backward pass: less memory, slower.",
    ),
    Param("fine_tune_type", str, "lora", "LoRA, or DoRA (weight-decomposed LoRA).", choices=("lora", "dora")),
    Param(
        "method",
        str,
        "sft",
        "sft: learn the answers; dpo or orpo: learn to prefer chosen over rejected answers (preference pairs); "
        "grpo: learn from rewards of its own sampled answers to prompts.",
        choices=("sft", "dpo", "orpo", "grpo"),
    ),
    Param(
        "beta",
        float,
        0.1,
        "dpo: how far from the base the rewards pull (smaller lets the adapter move further; 0.05-0.5 is usual); "
        "orpo: its lambda, the odds-ratio term's weight (0.05-0.25 is usual).",
        0.01,
        2.0,
    ),
    Param(
        "dpo_loss",
        str,
        "sigmoid",
        "dpo: the loss of the reward margin (sigmoid, or IPO's).",
        choices=("sigmoid", "ipo"),
    ),
    Param(
        "chosen_nll",
        float,
        1.0,
        "dpo: weight of the chosen answers' own loss, which keeps them intact (TRL's rpo_alpha); 0 is plain DPO.",
        0.0,
        10.0,
    ),
    Param(
        "rewards",
        list,
        [],
        "grpo: reward functions, weighted NAME=W: exact, contains, number (vs the answer), format:REGEX, length:N, "
        "or FILE.py:FUNCTION of your own (train --help says what each does).",
        shape="NAME[=W],...",
        check=check_rewards,
        split=split_rewards,
        normalise=absolute_reward_files,
        repeated_flag="reward",
    ),
    Param("group_size", int, 4, "grpo: answers sampled per prompt, scored against each other.", 2, 64),
    Param("completion_length", int, 128, "grpo: most tokens in a sampled answer.", 4, 4096),
    Param("temperature", float, 0.9, "grpo: sampling temperature of the answers (higher explores more).", 0.1, 2.0),
    Param(
        "kl_beta",
        float,
        0.04,
        "grpo: weight of the KL pull toward the base (the LoRA switched off); 0 drops it (Dr. GRPO, DAPO).",
        0.0,
        1.0,
    ),
    Param("epsilon", float, 0.2, "grpo: how far the probability ratio may move before it is clipped.", 0.01, 1.0),
    Param(
        "grpo_loss",
        str,
        "grpo",
        "grpo: each answer's mean token loss (grpo); tokens over the longest answer, no std (dr_grpo); "
        "one mean over all tokens (dapo).",
        choices=("grpo", "dr_grpo", "dapo"),
    ),
    Param("steps_per_eval", int, 50, "Validate every N steps.", 1, 100000),
    Param("val_batches", int, 25, "Validation batches each time (the whole set if smaller).", 1, 10000),
    Param(
        "save_every", int, 100, "Checkpoint every N steps (and at every epoch end); 0 for epoch ends only.", 0, 100000
    ),
    Param("keep_best", int, 3, "Keep the best K checkpoints by validation loss (the latest is always kept).", 1, 50),
    Param(
        "early_stopping_patience", int, 0, "Stop after N validations without improvement; 0 never stops early.", 0, 1000
    ),
    Param("seed", int, 0, "Random seed: data order, LoRA initialisation, dropout.", 0, 2**31 - 1),
    Param("sample_every", int, 0, "Every N validations, answer some validation prompts greedily; 0 never.", 0, 1000),
    Param("sample_prompts", int, 3, "How many prompts those samples answer.", 1, 16),
    Param(
        "sample_from",
        str,
        None,
        "Prompts for the samples: a .jsonl dataset or a text file, one prompt a line (default: validation set).",
        optional=True,
    ),
    Param(
        "columns",
        str,
        None,
        "Which column (or field) of the data holds which part of a record, e.g. prompt=question,completion=answer "
        "(default: the columns' own names).",
        optional=True,
        shape="KEY=COLUMN,...",
        check=parse_columns,
    ),
    Param(
        "wired_limit",
        float,
        None,
        "Mac: GB of memory MLX keeps resident for the run (default: Metal's recommended working set).",
        0.0,
        4096.0,
        optional=True,
    ),
    Param(
        "cache_limit",
        float,
        None,
        "Mac: GB of freed buffers MLX keeps for reuse (default: MLX's own, up to its memory limit); 0 keeps none.",
        0.0,
        4096.0,
        optional=True,
    ),
    Param(
        "replay",
        float,
        0.0,
        "Keep what it knew: this share of every epoch is the base model's own answers to general prompts "
        "(generated once, cached); drift from the base is checked at each validation. 0 off.",
        0.0,
        0.5,
    ),
)
PARAMS_BY_NAME = {param.name: param for param in PARAMS}


GRPO_PRESET = {
    "method": "grpo",
    "epochs": 1,
    "learning_rate": 3e-4,
    "rank": 16,
    "batch_size": 4,
    "group_size": 6,
    "completion_length": 64,
    "temperature": 1.0,
    "kl_beta": 0.1,
    "steps_per_eval": 8,
    "lr_schedule": "constant",
}


@dataclass(frozen=True)
class Preset:
    name: str
    purpose: str
    values: dict

    def describe(self) -> str:
        settings = ", ".join(f"{key.replace('_', '-')} {_shown(value)}" for key, value in self.values.items())
        return f"{self.name}: {self.purpose} ({settings})"


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("style", "tone, format or persona; the defaults", {"rank": 8, "epochs": 3, "learning_rate": 1e-4}),
        Preset(
            "knowledge",
            "new facts; more capacity and passes, every projection, replay to keep general answers",
            {
                "rank": 32,
                "epochs": 8,
                "learning_rate": 2e-4,
                "target_modules": list(SEPARATE_PROJECTIONS),
                "replay": 0.25,
            },
        ),
        Preset(
            "preference",
            "habits and style from chosen/rejected pairs (dpo)",
            {"method": "dpo", "epochs": 2, "learning_rate": 2e-4, "beta": 0.1, "chosen_nll": 1.0},
        ),
        Preset(
            "grpo",
            "rewarded behaviour from prompts (give the rewards with --reward)",
            GRPO_PRESET,
        ),
    )
}


def preset_values(name: str | None) -> dict:
    if name is None:
        return {}
    if name not in PRESETS:
        raise UserError(f"No preset named {name!r} (presets: {', '.join(PRESETS)}).")
    return dict(PRESETS[name].values)


@dataclass(frozen=True)
class TrainingParams:
    values: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def scale(self) -> float:
        return (self.alpha if self.alpha is not None else 2.0 * self.rank) / self.rank

    def to_json(self) -> dict:
        return dict(self.values)

    def to_toml(self) -> str:
        return to_toml({k: v for k, v in self.values.items() if v is not None})


def build_params(*sources: dict, origin: str = "parameters") -> TrainingParams:
    """Merge sources (later wins), check every value against the table."""
    merged = {param.name: param.default for param in PARAMS}
    for source in sources:
        for key, value in source.items():
            name = key.replace("-", "_")
            if name not in PARAMS_BY_NAME:
                raise UserError(f"{origin}: unknown training parameter {key!r}.")
            merged[name] = value
    return TrainingParams({name: _parse(PARAMS_BY_NAME[name], value, origin) for name, value in merged.items()})


def _parse(param: Param, value, origin: str):
    """The checked value; a bad one is named as the user wrote it: a --flag, or a key in a config file."""
    try:
        return param.parse(value)
    except UserError as exc:
        message = str(exc)
        if origin == "flags":
            message = param.flag + message.removeprefix(param.label)
        elif origin != "parameters":
            message = f"{origin}: {message}"
        raise UserError(message) from None


def load_config(path: Path) -> dict:
    raw = read_toml(path, missing="no such config file")
    build_params(raw, origin=str(path))
    return raw


def add_arguments(parser) -> None:
    """One flag per parameter, defaulting to None so config and preset values show through."""
    for param in PARAMS:
        label = f"{param.help} [{param.range_text}; default {_default_text(param)}]"
        if param.kind is bool:
            parser.add_argument(
                param.flag, dest=param.name, action=argparse.BooleanOptionalAction, default=None, help=label
            )
        elif param.repeated_flag:
            parser.add_argument(param.flag, dest=param.name, action="append", default=None, metavar="SPEC", help=label)
        else:
            metavar = "A,B,..." if param.kind is list else "N" if param.kind in (int, float) else "NAME"
            metavar = "FILE" if param.kind is str and not param.choices else metavar
            parser.add_argument(param.flag, dest=param.name, default=None, metavar=metavar, help=label)


def _default_text(param: Param) -> str:
    return "auto" if param.default is None else _shown(param.default)


def _shown(value) -> str:
    """A value as a flag or form field takes it: 8, 0.0002, on, q,k,v."""
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return _number(value)


def from_arguments(args) -> dict:
    values = {param.name: getattr(args, param.name) for param in PARAMS if getattr(args, param.name, None) is not None}
    for param in PARAMS:
        if param.repeated_flag and param.name in values:  # each --reward may itself list several
            values[param.name] = [item for text in values[param.name] for item in param.split(text)]
    return values
