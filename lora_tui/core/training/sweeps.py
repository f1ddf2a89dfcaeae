"""Sweeps: one `train` command over a grid of parameter values, each point an ordinary named run.

`--sweep learning-rate=1e-4,3e-4 --sweep rank=8,16` is 4 runs, named from the values as typed
(`tone-lr1e-4-r8`, ...). Each run records {"name": "tone", "values": {...}} in its metadata, so
`sweep show` finds the sweep's runs and ranks them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.errors import UserError
from lora_tui.core.training.params import PARAMS_BY_NAME

# Short names for run names; other parameters go by their own (kebab case).
SHORT = {
    "learning_rate": "lr",
    "rank": "r",
    "alpha": "a",
    "dropout": "d",
    "epochs": "e",
    "batch_size": "bs",
    "num_layers": "l",
    "weight_decay": "wd",
    "warmup_steps": "w",
    "max_seq_length": "len",
    "target_modules": "m",
}
NOT_SWEPT = {"columns", "sample_from", "rewards"}  # their commas and semicolons are their own


@dataclass(frozen=True)
class Axis:
    parameter: str  # snake case
    texts: tuple[str, ...]  # the values as typed
    values: tuple  # the checked values


@dataclass(frozen=True)
class GridPoint:
    name: str
    values: dict  # parameter -> checked value
    texts: dict  # parameter -> value as typed


def parse_sweep(text: str) -> Axis:
    """ "learning-rate=1e-4,3e-4" -> the axis, every value checked against the parameter table."""
    key, equals, values = text.partition("=")
    if not equals or not key.strip() or not values.strip():
        raise UserError(f"--sweep {text!r}: write PARAMETER=V1,V2 (e.g. --sweep learning-rate=1e-4,3e-4).")
    name = key.strip().removeprefix("--").replace("-", "_")
    param = PARAMS_BY_NAME.get(name)
    if param is None or name in NOT_SWEPT:
        raise UserError(
            f"--sweep {key.strip()}: not a training parameter that can be swept (see lora-tui train --help)."
        )
    separator = ";" if param.kind is list else ","  # a list parameter's own values are comma-separated
    texts = tuple(part.strip() for part in values.split(separator) if part.strip())
    if len(texts) < 2:
        raise UserError(f"--sweep {text!r}: give two or more values to sweep ({key.strip()}=A{separator}B).")
    checked = []
    for value in texts:
        try:
            checked.append(param.parse(value))
        except UserError as exc:
            raise UserError(f"--sweep {key.strip()}: {exc}") from None
    if len(set(map(str, checked))) < len(checked):
        raise UserError(f"--sweep {key.strip()}: a value is given twice.")
    return Axis(name, texts, tuple(checked))


def expand_grid(base_name: str, axes: list[Axis], fixed: dict) -> list[GridPoint]:
    """Every combination of the axes' values, named from the base name and the values as typed."""
    names = [axis.parameter for axis in axes]
    if len(set(names)) < len(names):
        raise UserError("--sweep: a parameter is swept twice; give all its values in one --sweep.")
    clash = [name for name in names if name in fixed]
    if clash:
        flag = PARAMS_BY_NAME[clash[0]].flag
        raise UserError(f"{flag} is given and swept; keep one (--sweep {flag[2:]}=... sweeps it).")
    points = []
    for combination in itertools.product(*(range(len(axis.values)) for axis in axes)):
        values = {axis.parameter: axis.values[i] for axis, i in zip(axes, combination, strict=True)}
        texts = {axis.parameter: axis.texts[i] for axis, i in zip(axes, combination, strict=True)}
        suffix = "-".join(f"{SHORT.get(p, p.replace('_', '-'))}{_name_part(t)}" for p, t in texts.items())
        points.append(GridPoint(f"{base_name}-{suffix}", values, texts))
    return points


def _name_part(text: str) -> str:
    """A value as an adapter name may hold it: 1e-4 as typed, 0.5 as 0p5, q,v as q+v... (only - and _ kept)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "p" if ch == "." else "_" for ch in text.replace(",", "_"))


# Ranking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRun:
    name: str
    values: dict
    status: str
    best_val_loss: float | None
    final_train_loss: float | None
    eval_score: float | None  # token F1 of the adapter's greedy answers on held-out records, when evaluated

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "values": self.values,
            "status": self.status,
            "best_val_loss": self.best_val_loss,
            "final_train_loss": self.final_train_loss,
            "eval_score": self.eval_score,
        }


def sweep_runs(adapters_dir: Path, sweep: str) -> list[SweepRun]:
    """The sweep's runs, best first: lowest best validation loss, ties (and runs without one) by eval score."""
    runs = []
    for folder in sorted(Path(adapters_dir).iterdir()) if Path(adapters_dir).is_dir() else []:
        try:
            meta = read_metadata(folder) if folder.is_dir() else {}
        except UserError:
            continue  # a damaged adapter is listed by `adapters list`, not ranked here
        info = meta.get("sweep")
        if not isinstance(info, dict) or info.get("name") != sweep:
            continue
        evaluation = meta.get("eval") if isinstance(meta.get("eval"), dict) else {}
        runs.append(
            SweepRun(
                folder.name,
                dict(info.get("values") or {}),
                str(meta.get("status", "?")),
                _number(meta.get("best_val_loss")),
                _number(meta.get("final_train_loss")),
                _number(evaluation.get("token_f1")),
            )
        )
    if not runs:
        raise UserError(f"No runs of a sweep named {sweep!r} (a sweep is named by train --name with --sweep).")
    return sorted(runs, key=_rank_key)


def _rank_key(run: SweepRun):
    loss = run.best_val_loss if run.best_val_loss is not None else math.inf
    return (loss, -(run.eval_score if run.eval_score is not None else -math.inf), run.name)


def _number(value) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )
