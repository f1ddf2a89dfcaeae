"""What a training run is asked to do: written once as run.json, read back to resume, sent to every rank."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from lora_tui.core.adapters.layout import RUN_SPEC, write_json
from lora_tui.core.errors import UserError
from lora_tui.core.training.params import TrainingParams, build_params


@dataclass(frozen=True)
class TrainingJob:
    model_path: Path
    data: Path
    adapter_dir: Path
    params: TrainingParams
    model_name: str = ""  # as the user named it (shown in metadata)
    resume: bool = False
    from_adapter: Path | None = None  # an adapter to start from (and, for DPO, the reference)
    sweep: dict | None = None  # the sweep this run belongs to: {"name": ..., "values": {parameter: value}}
    longest_first: bool = False  # a trial (train --estimate): its first batch is the run's longest

    def to_json(self) -> dict:
        return {
            "model": self.model_name or str(self.model_path),
            "model_path": str(self.model_path),
            "data": str(self.data),
            "parameters": self.params.to_json(),
            "adapter_dir": str(self.adapter_dir),
            "resume": self.resume,
            **({"from_adapter": str(self.from_adapter)} if self.from_adapter else {}),
            **({"sweep": self.sweep} if self.sweep else {}),
        }

    @classmethod
    def from_json(cls, data: dict, adapter_dir: Path | None = None) -> TrainingJob:
        """The job a to_json() document describes; run.json files written before adapter_dir was kept in them
        name their folder by where they are."""
        return cls(
            model_path=Path(data["model_path"]),
            data=Path(data["data"]),
            adapter_dir=Path(adapter_dir or data["adapter_dir"]),
            params=build_params(data["parameters"]),
            model_name=data.get("model", ""),
            resume=bool(data.get("resume", False)),
            from_adapter=Path(data["from_adapter"]) if data.get("from_adapter") else None,
            sweep=data.get("sweep") if isinstance(data.get("sweep"), dict) else None,
        )

    def save(self) -> None:
        """run.json in the adapter folder (without the folder itself, which a rename changes)."""
        recorded = {key: value for key, value in self.to_json().items() if key not in ("adapter_dir", "resume")}
        write_json(self.adapter_dir / RUN_SPEC, recorded)

    @classmethod
    def load(cls, adapter_dir: Path) -> TrainingJob | None:
        """The run recorded in adapter_dir/run.json, to resume; None when there is none."""
        path = Path(adapter_dir) / RUN_SPEC
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")), adapter_dir=Path(adapter_dir))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a run description lora-tui can read ({exc}).") from None

    def resumed(self) -> TrainingJob:
        return replace(self, resume=True)
