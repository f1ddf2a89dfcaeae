"""Where an evaluation is kept: adapters/NAME/evals/TIMESTAMP.json, and its summary in the adapter's metadata."""

from __future__ import annotations

from pathlib import Path

from lora_tui.core.adapters.layout import read_metadata, write_json, write_metadata
from lora_tui.core.adapters.lock import adapter_lock

EVALS = "evals"


def summary_of(document: dict) -> dict:
    summary = {key: document[key] for key in ("created", "data", "summary", "regressions")}
    if "preference" in document:
        summary["preference"] = document["preference"]
    if "drift" in document:
        summary["drift"] = {key: value for key, value in document["drift"].items() if key != "examples"}
    return summary


def save_evaluation(adapter_dir: Path, document: dict) -> Path:
    """Write the report and the summary; AdapterBusy when a run holds the adapter (nothing is written)."""
    adapter_dir = Path(adapter_dir)
    stamp = document["created"][:19].replace(":", "").replace("-", "") + "Z"
    target = adapter_dir / EVALS / f"{stamp}.json"
    with adapter_lock(adapter_dir.parent, adapter_dir.name, doing="evaluating"):
        target.parent.mkdir(exist_ok=True)
        write_json(target, document)
        meta = read_metadata(adapter_dir)
        if meta:
            write_metadata(adapter_dir, {**meta, "last_evaluation": summary_of(document)})
    return target


def describe_summary(summary: dict) -> list[str]:
    """A saved evaluation, a line per model: what the Adapters screen's detail shows."""
    lines = [f"evaluated {summary['created'][:16].replace('T', ' ')} on {Path(summary['data']).name}"]
    for side in summary["summary"]:
        loss = f"{side['loss']:.3f}" if side.get("loss") is not None else "-"
        contained = f"{side['contained']:.0%}" if side.get("contained") is not None else "-"
        f1 = f"{side['token_f1']:.2f}" if side.get("token_f1") is not None else "-"
        lines.append(f"  {side['label']}: loss {loss}, contained {contained}, F1 {f1}")
    lines.append(f"  regressions: {summary['regressions']}")
    if summary.get("preference"):
        lines.append("  " + describe_rewards(summary["preference"]))
    for side in summary["summary"]:
        if side.get("rewards"):
            lines.append("  " + describe_side_rewards(side["label"], side["rewards"]))
    if summary.get("drift"):
        drift = summary["drift"]
        kept = f", {drift['kept']} of {drift['known']} facts kept" if drift.get("known") else ""
        lines.append(f"  drift: {drift['drift']:.2f}{kept}")
    return lines


def describe_rewards(rewards: dict) -> str:
    return (
        f"held-out pairs (the base as reference): reward accuracy {rewards['reward_accuracy']:.0%}, "
        f"margin {rewards['reward_margin']:.3f} (chosen {rewards['chosen_reward']:.3f}, "
        f"rejected {rewards['rejected_reward']:.3f})"
    )


def describe_side_rewards(label: str, rewards: dict) -> str:
    each = ", ".join(f"{name} {mean:.2f}" for name, mean in rewards["by_reward"].items())
    return f"{label}: held-out reward {rewards['total']:.3f} ({each}), greedy"
