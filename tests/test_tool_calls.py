"""Tool-calling records (mlx-lm's format): read, validated, rendered through a template that takes tools."""

import json
import shutil

import pytest
from trainkit import train

from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.records import load_records
from lora_tui.core.data.tokens import load_token_counter
from lora_tui.core.errors import UserError

# Qwen 2.5's way with tools, shortened: declarations in the system turn, calls and responses tagged.
TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{%- endif %}\n# Tools\n<tools>"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools><|im_end|>\n"
    "{%- elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- elif message['role'] == 'assistant' %}<|im_start|>assistant\n{{ message['content'] }}"
    "{%- for call in message.get('tool_calls', []) %}<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n</tool_call>'
    "{%- endfor %}<|im_end|>\n"
    "{%- elif message['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message['content'] }}\n"
    "</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _record(city: str, arguments=None, name: str = "get_weather") -> dict:
    call = {"type": "function", "function": {"name": name, "arguments": arguments or {"city": city}}}
    return {
        "messages": [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "name": name, "content": json.dumps({"city": city, "sky": "clear"})},
            {"role": "assistant", "content": f"It is clear in {city}."},
        ],
        "tools": [WEATHER],
    }


@pytest.fixture
def tools_model(tiny_model_dir, tmp_path):
    folder = tmp_path / "tools-model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": TOOLS_TEMPLATE}))
    return folder


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_tool_records_are_counted_as_the_template_renders_them(tools_model, tmp_path):
    data = _write(tmp_path / "tools.jsonl", [_record(city) for city in ("Oslo", "Lima", "Pune")])
    counter = load_token_counter(tools_model)
    report = check_dataset(data, counter)
    assert report.ok and report.format == "chat"
    record = load_records(data)[0]
    assert record.tools == (WEATHER,)
    assert record.messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    rendered = counter.render(record)
    assert '"name": "get_weather"' in rendered and "<tool_response>" in rendered and "# Tools" in rendered
    expected = counter.hf.apply_chat_template(
        _record("Oslo")["messages"], tools=[WEATHER], tokenize=True, return_dict=False
    )
    assert int(report.tokens.counts[0]) == len(expected)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_record("Oslo", name="get_time"), "calls 'get_time', which the record does not declare"),
        (_record("Oslo", arguments='{"city": "Oslo"'), "the arguments are not valid JSON"),
        (_record("Oslo", arguments="[1, 2]"), "the arguments must be a JSON object, not an array"),
        ({**_record("Oslo"), "tools": [{"type": "function"}]}, "tool 1 needs"),
        ({"messages": _record("Oslo")["messages"]}, "its tools: none"),
    ],
)
def test_bad_tool_calls_are_line_errors(tmp_path, record, message):
    report = check_dataset(_write(tmp_path / "bad.jsonl", [_record("Lima"), record]))
    assert [(e.line, message in e.message) for e in report.errors] == [(2, True)]


def test_a_template_without_tools_is_one_clear_error(tiny_model_dir, tmp_path):
    data = _write(tmp_path / "tools.jsonl", [_record("Oslo")])
    with pytest.raises(UserError, match="line 1: the record calls tools, and the model's chat template has no place"):
        check_dataset(data, load_token_counter(tiny_model_dir))


def test_tool_records_train(tools_model, tmp_path):
    rows = [_record(city) for city in ("Oslo", "Lima", "Pune", "Bern", "Kiev", "Rome", "Baku", "Doha")]
    data = _write(tmp_path / "train.jsonl", rows)
    finished = train(tools_model, data, tmp_path / "adapter", epochs=1, batch_size=4, max_seq_length=512)
    assert finished.step == 2 and finished.reason == "completed"
