"""A real public dataset kept as a table: vega_datasets' airports.csv (US FAA airport codes; the package is
MIT-licensed), checked through a column mapping and trained for a few steps on the demo model."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from lora_tui.cli import main
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.columns import parse_columns
from lora_tui.core.data.tokens import load_token_counter

pytestmark = pytest.mark.e2e
COLUMNS = "prompt=iata,completion=name"


def _airports() -> Path:
    package = importlib.util.find_spec("vega_datasets")  # its data files only: importing it would load pandas
    return Path(package.submodule_search_locations[0]) / "_data" / "airports.csv"


def test_airports_csv_checks_with_exact_tokens_and_trains(demo_model_dir, tmp_path, isolated_home, capsys):
    airports = _airports()
    report = check_dataset(airports, load_token_counter(demo_model_dir), columns=parse_columns(COLUMNS))
    assert report.ok and (report.source, report.format) == ("csv", "completion")
    assert report.valid_records == 3376 == sum(1 for _ in airports.open()) - 1
    counter = load_token_counter(demo_model_dir)
    first = {"role": "user", "content": "00M"}, {"role": "assistant", "content": "Thigpen"}
    assert int(report.tokens.counts[0]) == len(counter.hf.apply_chat_template(list(first), return_dict=False))
    head = tmp_path / "airports-head.csv"
    head.write_text("".join(airports.read_text().splitlines(keepends=True)[:65]))
    args = ["train", "--model", str(demo_model_dir), "--data", str(head), "--name", "airports", "--columns", COLUMNS]
    args += ["--epochs", "1", "--batch-size", "8", "--max-seq-length", "64", "--valid-fraction", "0.125"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("started: 56 train / 8 valid records, 7 steps") for line in lines), lines[:3]
    losses = [float(re.search(r"loss ([\d.]+)", line)[1]) for line in lines if line.startswith("step ")]
    assert len(losses) == 7 and losses[-1] < losses[0], losses
    meta = json.loads((isolated_home.adapters_dir / "airports" / "lora_tui.json").read_text())
    assert meta["status"] == "finished" and meta["parameters"]["columns"] == COLUMNS
