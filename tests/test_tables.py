"""Datasets kept as tables: Parquet, Arrow (save_to_disk), CSV/TSV, JSON arrays, Hub snapshots; column mapping."""

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lora_tui.cli import main
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.columns import SavedColumns, parse_columns, propose_columns
from lora_tui.core.data.records import ColumnsNeeded, dataset_files, iter_records, load_records
from lora_tui.core.data.split import split_dataset
from lora_tui.core.data.tables import iter_rows
from lora_tui.core.errors import UserError

QA = [{"question": f"What is {i} plus {i}?", "answer": f"It is {2 * i}."} for i in range(12)]
QA_COLUMNS = "prompt=question,completion=answer"


def _chat(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Say {i}."},
            {"role": "assistant", "content": f"{i}, said."},
        ]
    }


def _parquet(path: Path, rows: list[dict], row_group_size: int | None = None) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def test_parquet_with_a_messages_column_needs_no_mapping(tmp_path):
    path = _parquet(tmp_path / "chat.parquet", [_chat(i) for i in range(5)])
    report = check_dataset(path)
    assert report.ok and (report.format, report.source, report.valid_records) == ("chat", "parquet", 5)
    assert load_records(path)[2].messages[1]["content"] == "2, said."


def test_parquet_is_read_a_row_group_at_a_time(tmp_path):
    rows = [{"text": f"{i} " + "x" * 2000} for i in range(12000)]  # 24 MB of text in 120 row groups
    path = _parquet(tmp_path / "big.parquet", rows, row_group_size=100)
    del rows
    peak = 0
    for row in iter_rows(path):
        peak = max(peak, pa.total_allocated_bytes())
        assert row.values["text"].startswith(f"{row.number - 1} ")
    assert row.number == 12000
    assert peak < 6_000_000, f"held {peak} bytes of Arrow memory at once: the file was read whole"


def test_shards_are_one_table_numbered_across_files(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for index in range(3):
        _parquet(folder / f"train-{index:05d}-of-00003.parquet", [_chat(index * 10 + i) for i in range(4)])
    (folder / "train-00001-of-00003.parquet").rename(folder / "moved.bin")
    with pytest.raises(UserError, match="2 of the 3 shards of train are here"):
        list(iter_rows(folder / "train-00000-of-00003.parquet"))
    (folder / "moved.bin").rename(folder / "train-00001-of-00003.parquet")
    assert check_dataset(folder).valid_records == 12
    rows = list(iter_rows(folder / "train-00000-of-00003.parquet"))
    assert [row.number for row in rows] == list(range(1, 13))
    assert rows[5].place == "row 6 (train-00001-of-00003.parquet)"


def test_csv_rows_know_their_lines_and_their_problems(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(
        '\ufeffquestion,answer\nWhat is two?,"Two,\nwritten on two lines."\n\n'
        "Short?,yes\nonly one value\n,empty question\n",
        encoding="utf-8",
    )
    report = check_dataset(path, columns=parse_columns(QA_COLUMNS))
    assert (report.format, report.source, report.valid_records, report.records) == ("completion", "csv", 2, 4)
    assert [(e.line, e.place, e.message) for e in report.errors] == [
        (3, "row 3 (line 6)", "1 value; the header has 2 columns"),
        (4, "row 4 (line 7)", "column 'question' (prompt) is empty"),
    ]
    first = next(iter_records(path, columns=parse_columns(QA_COLUMNS)))
    assert (first.place, first.response) == ("row 1 (line 2)", "Two,\nwritten on two lines.")


def test_tsv_and_a_json_array_read_the_same_records(tmp_path):
    tsv = tmp_path / "qa.tsv"
    tsv.write_text("question\tanswer\n" + "".join(f"{r['question']}\t{r['answer']}\n" for r in QA))
    array = tmp_path / "qa.json"
    array.write_text(json.dumps(QA, indent=2))
    columns = parse_columns(QA_COLUMNS)
    assert [r.messages for r in load_records(tsv, columns)] == [r.messages for r in load_records(array, columns)]
    assert load_records(array, columns)[1].place == "row 2 (line 6)"


def test_a_json_array_cut_short_or_of_other_things_is_one_sentence(tmp_path):
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(QA, indent=2)[:300])
    with pytest.raises(UserError, match=r"cut\.json, line \d+: not valid JSON \(.*cut short"):
        check_dataset(cut, columns=parse_columns(QA_COLUMNS))
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[1, 2]\n")
    with pytest.raises(UserError, match=r"numbers\.json, line 1: the array must hold records \(JSON objects\)"):
        check_dataset(numbers, columns=parse_columns("text=x"))


def test_a_jsonl_file_named_json_is_still_jsonl(tmp_path):
    path = tmp_path / "chat.json"
    path.write_text("".join(json.dumps(_chat(i)) + "\n" for i in range(3)))
    report = check_dataset(path)
    assert (report.source, report.valid_records) == ("jsonl", 3)


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    train, test = datasets.Dataset.from_list(QA[:8]), datasets.Dataset.from_list(QA[8:])
    train.save_to_disk(str(tmp_path / "one"))
    datasets.DatasetDict({"train": train, "validation": test, "test": test}).save_to_disk(str(tmp_path / "dict"))
    columns = parse_columns(QA_COLUMNS)
    one = check_dataset(tmp_path / "one", columns=columns)
    assert (one.source, one.valid_records) == ("arrow", 8)
    splits = dataset_files(tmp_path / "dict")
    assert list(splits) == ["train", "valid", "test"]
    assert check_dataset(tmp_path / "dict", columns=columns).splits == {"train": 8, "valid": 4, "test": 4}


def _hub_snapshot(cache: Path, repo: str, files: dict[str, list[dict]]) -> Path:
    """The Hugging Face cache's layout for a dataset repo (what snapshot_download leaves)."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    for name, rows in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        _parquet(snapshot / name, rows)
    return snapshot


def test_a_hub_dataset_in_the_cache_is_found_by_its_id_offline(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    _hub_snapshot(
        cache,
        "someone/arith",
        {
            "data/train-00000-of-00002.parquet": [_chat(i) for i in range(6)],
            "data/train-00001-of-00002.parquet": [_chat(i) for i in range(6, 10)],
            "data/test-00000-of-00001.parquet": [_chat(i) for i in range(10, 13)],
        },
    )
    report = check_dataset(Path("someone/arith"))
    assert report.ok and report.splits == {"train": 10, "test": 3}
    with pytest.raises(UserError, match="no such file or folder"):
        dataset_files(Path("someone/not-cached"))


def test_columns_that_name_no_format_get_a_proposal(tmp_path):
    path = _parquet(tmp_path / "qa.parquet", QA)
    with pytest.raises(ColumnsNeeded) as caught:
        check_dataset(path)
    assert caught.value.proposal == {"prompt": "question", "completion": "answer"}
    assert "--columns prompt=question,completion=answer" in str(caught.value)
    assert propose_columns(["q_text", "long_reply"], [{"q_text": "Hi?", "long_reply": "Hello there, friend."}]) == {
        "prompt": "q_text",
        "completion": "long_reply",
    }


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("prompt=question,completion", "'completion' is not KEY=COLUMN"),
        ("question=prompt", "'question' is not a part of a record"),
        ("prompt=question,prompt=answer", "prompt is given twice"),
    ],
)
def test_malformed_mappings_are_refused(columns, message):
    with pytest.raises(UserError, match=message):
        parse_columns(columns)


def test_mapping_to_a_missing_column_or_a_wrong_type(tmp_path):
    path = tmp_path / "cars.json"
    path.write_text(json.dumps([{"Name": "a car", "Horsepower": 130}, {"Name": "another", "Horsepower": None}]))
    with pytest.raises(UserError, match=r"no column 'Origin' \(the columns are Name, Horsepower\)"):
        check_dataset(path, columns=parse_columns("prompt=Name,completion=Origin"))
    report = check_dataset(path, columns=parse_columns("prompt=Name,completion=Horsepower"))
    assert [e.message for e in report.errors] == [
        "column 'Horsepower' (completion) holds a number; completion needs text",
        "column 'Horsepower' (completion) is empty",
    ]


def test_a_mapping_that_makes_no_whole_format_is_refused(tmp_path):
    path = _parquet(tmp_path / "qa.parquet", QA)
    with pytest.raises(UserError, match=r"--columns system=question maps no whole format; give the parts of one"):
        check_dataset(path, columns=parse_columns("system=question"))


def test_jsonl_fields_map_too(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in QA))
    assert "map them with --columns prompt=question,completion=answer" in check_dataset(path).errors[0].message
    assert check_dataset(path, columns=parse_columns(QA_COLUMNS)).valid_records == 12


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("not.parquet", b"question,answer\nx,y\n", "not a Parquet file"),
        ("cut.parquet", None, "cut short"),
        ("binary.csv", None, "binary file, not CSV"),
    ],
)
def test_a_file_that_is_not_what_its_name_says(tmp_path, name, content, message):
    good = _parquet(tmp_path / "good.parquet", QA).read_bytes()
    (tmp_path / name).write_bytes(content if content is not None else good[: len(good) // 2])
    with pytest.raises(UserError, match=message):
        check_dataset(tmp_path / name, columns=parse_columns(QA_COLUMNS))


def test_convert_writes_jsonl_of_the_format_and_nothing_on_a_bad_row(tmp_path, capsys):
    source = tmp_path / "qa.csv"
    source.write_text("question,answer\n" + "".join(f"{r['question']},{r['answer']}\n" for r in QA))
    out = tmp_path / "qa.jsonl"
    assert main(["data", "convert", str(source), "--out", str(out), "--columns", QA_COLUMNS]) == 0
    assert json.loads(out.read_text().splitlines()[0]) == {"prompt": QA[0]["question"], "completion": QA[0]["answer"]}
    assert check_dataset(out).format == "completion"
    source.write_text(source.read_text() + "ragged,row,here\n")
    again = tmp_path / "again.jsonl"
    assert main(["data", "convert", str(source), "--out", str(again), "--columns", QA_COLUMNS]) == 1
    assert "row 13 (line 14): 3 values; the header has 2 columns" in capsys.readouterr().err
    assert not again.exists() and not list(tmp_path.glob(".again*"))


def test_split_and_redact_write_the_mapped_records(tmp_path):
    source = _parquet(tmp_path / "qa.parquet", QA)
    counts = split_dataset(source, tmp_path / "split", valid_fraction=0.25, columns=parse_columns(QA_COLUMNS))
    assert counts == {"train": 9, "valid": 3}
    assert check_dataset(tmp_path / "split").format == "completion"
    assert main(["data", "redact", str(source), "--out", str(tmp_path / "r.jsonl"), "--columns", QA_COLUMNS]) == 0
    assert len(load_records(tmp_path / "r.jsonl")) == 12


def test_a_mapping_saved_in_the_app_is_used_by_the_cli(tmp_path, isolated_home, capsys):
    source = _parquet(tmp_path / "qa.parquet", QA)
    assert main(["data", "check", str(source)]) == 1
    SavedColumns(isolated_home.column_maps_file).put(source, parse_columns(QA_COLUMNS))
    assert main(["data", "check", str(source), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["columns"] == {"prompt": "question", "completion": "answer"}
    assert "column mapping saved in the app" in captured.err


def test_train_and_eval_read_a_table_through_its_mapping(tiny_model_dir, tmp_path, isolated_home, capsys):
    source = _parquet(tmp_path / "qa.parquet", QA * 2)
    args = ["train", "--model", str(tiny_model_dir), "--data", str(source), "--name", "qa", "--epochs", "1"]
    args += ["--batch-size", "4", "--max-seq-length", "64", "--columns", QA_COLUMNS, "--valid-fraction", "0.25"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("started: 18 train / 6 valid records")
    meta = json.loads((isolated_home.adapters_dir / "qa" / "lora_tui.json").read_text())
    assert meta["parameters"]["columns"] == QA_COLUMNS
    eval_args = ["eval", "--adapter", "qa", "--data", str(source), "--columns", QA_COLUMNS, "--limit", "2"]
    assert main([*eval_args, "--max-tokens", "4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["records"]) == 2
