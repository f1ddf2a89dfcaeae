"""Dataset formats and line-by-line validation, against the corpus in tests/data."""

import json
from pathlib import Path

import pytest

from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.records import ReadState, dataset_files, iter_records, load_records
from lora_tui.core.errors import UserError

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("name", "expected_format", "records"),
    [
        ("chat.jsonl", "chat", 2),
        ("messages.jsonl", "messages", 2),
        ("text.jsonl", "text", 2),
        ("completion.jsonl", "completion", 2),
        ("instruction.jsonl", "instruction", 2),
        ("lines.txt", "plain-text", 2),
        ("bom-crlf.jsonl", "text", 2),
    ],
)
def test_every_format_reads_cleanly(name, expected_format, records):
    report = check_dataset(DATA / "good" / name)
    assert report.ok, report.errors
    assert (report.format, report.valid_records) == (expected_format, records)


def test_records_know_prompt_and_response():
    chat = load_records(DATA / "good" / "chat.jsonl")
    assert chat[0].response == "Blue."
    assert [m["role"] for m in chat[0].prompt_messages] == ["system", "user"]
    assert chat[1].response == "Done."  # the last assistant turn
    instruction = load_records(DATA / "good" / "instruction.jsonl")
    assert instruction[0].messages[0]["content"] == "Summarise.\n\nLoRA trains small matrices."
    assert instruction[1].messages[0]["content"] == "Say hi."
    completion = load_records(DATA / "good" / "completion.jsonl")
    assert completion[0].messages == (
        {"role": "user", "content": "Translate: cat"},
        {"role": "assistant", "content": "chat"},
    )
    text = load_records(DATA / "good" / "lines.txt")
    assert [r.text for r in text] == ["First example line.", "Second example line."]
    assert [r.line for r in text] == [1, 3]


def test_bom_and_crlf_are_tolerated():
    records = load_records(DATA / "good" / "bom-crlf.jsonl")
    assert [r.text for r in records] == ["BOM first", "CRLF ends"]
    assert [r.line for r in records] == [1, 3]


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("invalid-json.jsonl", 2, "invalid JSON"),
        ("not-object.jsonl", 2, "expected a JSON object or array, not a number"),
        ("unknown-format.jsonl", 1, "unknown format (keys: answer, question)"),
        ("mixed-formats.jsonl", 2, "mixed formats: this line is completion, the file is text"),
        ("missing-field.jsonl", 1, "missing field 'prompt'"),
        ("empty-field.jsonl", 1, "field 'completion' is empty"),
        ("wrong-type.jsonl", 1, "field 'text' must be a string, not a number"),
        ("messages-not-array.jsonl", 1, "'messages' must be an array, not a string"),
        ("unknown-role.jsonl", 1, "message 1 has role 'narrator'"),
        ("no-assistant.jsonl", 1, "the conversation has no assistant turn"),
        ("invalid-utf8.jsonl", 1, "invalid UTF-8 at byte 14"),
    ],
)
def test_each_problem_names_its_line(name, line, message):
    report = check_dataset(DATA / "bad" / name)
    assert not report.ok
    assert [(e.line, message in e.message) for e in report.errors] == [(line, True)]


def test_all_problems_are_reported_not_just_the_first(tmp_path):
    lines = ['{"text": "ok"}', "nope", '{"text": ""}', "[1]", '{"text": "fine"}', "{"]
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = check_dataset(path)
    assert [e.line for e in report.errors] == [2, 3, 4, 6]
    assert (report.records, report.valid_records) == (6, 2)


def test_problem_list_is_capped_but_counted(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": 1}\n' * 500)
    report = check_dataset(path)
    assert len(report.errors) == 200 and report.error_count == 500 and report.records == 500


def test_streaming_never_holds_the_file(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "line"}\n' * 20000)
    state = ReadState(path)
    first = next(iter_records(path, state))
    assert first.line == 1 and state.lines == 1  # one line read, not the file


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("bad/empty.jsonl", "the file is empty"),
        ("bad/csv-named.jsonl", "line 1 is not JSON"),
        ("no/such/file.jsonl", "no such file or folder"),
        ("good", "the folder has no train.jsonl"),
    ],
)
def test_unusable_inputs_are_one_sentence(path, message):
    with pytest.raises(UserError, match=message):
        check_dataset(DATA / path)


def test_blank_file_has_no_records():
    report = check_dataset(DATA / "bad" / "blank.jsonl")
    assert not report.ok and "no records" in report.errors[0].message


def test_mlx_layout_folder():
    files = dataset_files(DATA / "mlx-layout")
    assert set(files) == {"train", "valid"}
    report = check_dataset(DATA / "mlx-layout")
    assert report.ok and report.splits == {"train": 2, "valid": 1} and report.valid_records == 3


def test_errors_in_a_folder_name_their_file(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "ok"}\n')
    (tmp_path / "valid.jsonl").write_text('{"text": "ok"}\nbroken\n')
    report = check_dataset(tmp_path)
    assert [e.to_json() for e in report.errors] == [
        {"line": 2, "message": report.errors[0].message, "file": "valid.jsonl"}
    ]


@pytest.mark.parametrize("path", ["bad/empty.jsonl", "bad/csv-named.jsonl", "no/such/file.jsonl", "good"])
def test_cli_unusable_inputs_exit_1_with_one_line(path, capsys):
    from lora_tui.cli import main

    assert main(["data", "check", str(DATA / path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lora-tui: ") and len(err.strip().splitlines()) == 1


def test_append_chat_example_validates_and_never_half_writes(tmp_path):
    from lora_tui.core.data.records import append_chat_example, load_records

    path = tmp_path / "examples.jsonl"
    exchange = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    assert append_chat_example(path, exchange) == 1
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # a file without a final newline
    assert append_chat_example(path, exchange) == 2
    assert [r.messages[-1]["content"] for r in load_records(path)] == ["Hello.", "Hello."]
    with pytest.raises(UserError, match="no assistant turn"):
        append_chat_example(path, exchange[:1])
    text = tmp_path / "text.jsonl"
    text.write_text('{"text": "plain"}\n')
    with pytest.raises(UserError, match="it is in text format"):
        append_chat_example(text, exchange)
    assert text.read_text() == '{"text": "plain"}\n'


def test_openai_content_parts_are_read_as_their_text(tmp_path):
    data = tmp_path / "parts.jsonl"
    parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "2 + 2?"}]
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "4"}]})
    )
    [record] = load_records(data)
    assert record.messages[0]["content"] == "What is 2 + 2?"
    image = [{"type": "image_url", "image_url": {"url": "cat.png"}}]
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": image}, {"role": "assistant", "content": "a cat"}]})
    )
    report = check_dataset(data)
    assert "message 1 (user) has content parts lora-tui cannot train on (image_url)" in report.errors[0].message


def test_a_file_of_blank_lines_is_one_problem_of_the_whole_file(tmp_path):
    data = tmp_path / "blank.jsonl"
    data.write_text("\n\n\n")
    report = check_dataset(data)
    assert report.describe()[1] == "  error   no records: every line is blank"
    assert report.to_json()["errors"][0]["line"] is None
