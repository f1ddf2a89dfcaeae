"""What trains, per family: every assistant turn with its end of turn, no prompt token (data/masks.py).

Each case reads the mask back through the family's own chat template (tests/familytemplates.py).
"""

import json

import pytest
from familytemplates import CHAT_FAMILIES, FAMILIES, make_chat_family_model

from lora_tui.cli import main
from lora_tui.core.data.masks import mask_record
from lora_tui.core.data.records import load_records
from lora_tui.core.errors import UserError
from lora_tui.core.training.batching import make_batch, tokenize

TWO_TURNS = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And the fox?"},
    {"role": "assistant", "content": "It jumps over the lazy dog."},
]
# What each family trains of the two assistant turns above, as text: the answer and its end of turn.
TRAINED_TURNS = {
    "llama": ["Paris.<|eot_id|>", "It jumps over the lazy dog.<|eot_id|>"],
    "qwen2": ["Paris.<|im_end|>\n", "It jumps over the lazy dog.<|im_end|>\n"],
    "qwen3": ["Paris.<|im_end|>\n", "<think>\n\n</think>\n\nIt jumps over the lazy dog.<|im_end|>\n"],
    "gemma3": ["Paris.<end_of_turn>\n", "It jumps over the lazy dog.<end_of_turn>\n"],
    "mistral": [" Paris.</s>", " It jumps over the lazy dog.</s>"],
    "phi3": ["Paris.<|end|>\n", "It jumps over the lazy dog.<|end|>\n<|endoftext|>"],
    "qwen3_moe": ["Paris.<|im_end|>\n", "<think>\n\n</think>\n\nIt jumps over the lazy dog.<|im_end|>\n"],
}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from mlx_lm import load

    folder = tmp_path_factory.mktemp("families")
    return {name: load(str(make_chat_family_model(folder / name, name)))[1] for name in FAMILIES}


def read(tmp_path, *rows) -> list:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_records(path)


def trained_texts(tokenizer, masked) -> list[str]:
    return [tokenizer.decode(list(masked.tokens[start:end])) for start, end in masked.spans]


def masked_text(tokenizer, masked) -> str:
    flags = masked.trained()
    return tokenizer.decode([t for t, trained in zip(masked.tokens, flags, strict=True) if not trained])


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_every_assistant_turn_trains_with_its_end_of_turn_and_no_prompt_token_does(family, tokenizers, tmp_path):
    tokenizer = tokenizers[family]
    [record] = read(tmp_path, {"messages": TWO_TURNS})
    masked = mask_record(tokenizer, record)
    assert trained_texts(tokenizer, masked) == TRAINED_TURNS[family]
    prompt = masked_text(tokenizer, masked)
    assert "capital of France" in prompt and "And the fox?" in prompt
    assert "Paris" not in prompt and "lazy dog" not in prompt
    assert [p.label for p in masked.parts if p.trained] == ["assistant 1", "assistant 2"]


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_the_batch_trains_exactly_the_masked_tokens(family, tokenizers, tmp_path):
    tokenizer = tokenizers[family]
    [record] = read(tmp_path, {"messages": TWO_TURNS})
    [example], _ = tokenize([record], tokenizer, 512)
    batch = make_batch([example], ((0,),), mask_prompt=True, packed=False)
    flags = mask_record(tokenizer, record).trained()
    # target t is token t+1
    assert batch.loss_mask[0, : len(flags) - 1].tolist() == [float(f) for f in flags[1:]]
    assert batch.loss_mask[0, len(flags) - 1 :].sum() == 0


def test_mlx_lm_style_last_turn_only_is_what_preference_pairs_use(tokenizers, tmp_path):
    tokenizer = tokenizers["qwen2"]
    [record] = read(tmp_path, {"messages": TWO_TURNS})
    masked = mask_record(tokenizer, record, last_turn_only=True)
    assert trained_texts(tokenizer, masked) == ["It jumps over the lazy dog.<|im_end|>\n"]


def test_gemma_has_no_system_role_and_its_template_puts_the_system_prompt_in_the_first_user_turn(tokenizers, tmp_path):
    tokenizer = tokenizers["gemma3"]
    [record] = read(tmp_path, {"messages": TWO_TURNS})
    masked = mask_record(tokenizer, record)
    first = masked.parts[0]
    assert not first.trained and first.label == "system + user"
    assert tokenizer.decode(list(masked.tokens[first.start : first.end])).startswith(
        "<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is the capital of France?"
    )
    assert not masked.system_dropped


def test_a_template_that_drops_the_system_prompt_says_so_and_masks_what_it_renders(tokenizers, tmp_path):
    tokenizer = tokenizers["mistral"]  # v0.3 puts it before the last user message only: a finished record loses it
    [record] = read(tmp_path, {"messages": TWO_TURNS})
    masked = mask_record(tokenizer, record)
    assert masked.system_dropped
    assert "Answer briefly" not in tokenizer.decode(list(masked.tokens))
    assert trained_texts(tokenizer, masked) == TRAINED_TURNS["mistral"]


def test_qwen3_keeps_thinking_only_after_the_last_user_message_as_its_template_does(tokenizers, tmp_path):
    tokenizer = tokenizers["qwen3"]
    turns = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\nFour."},
        {"role": "user", "content": "And 3 + 3?"},
        {"role": "assistant", "content": "<think>\nThree and three.\n</think>\n\nSix."},
    ]
    [record] = read(tmp_path, {"messages": turns})
    masked = mask_record(tokenizer, record)
    assert trained_texts(tokenizer, masked) == [
        "Four.<|im_end|>\n",
        "<think>\nThree and three.\n</think>\n\nSix.<|im_end|>\n",
    ]
    assert "Two and two" not in tokenizer.decode(list(masked.tokens))


def test_a_tool_calling_record_trains_the_calls_and_the_answer_not_the_tool_output(tokenizers, tmp_path):
    tokenizer = tokenizers["qwen2"]
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    row = {
        "tools": [tool],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "P"}}}],
            },
            {"role": "tool", "name": "get_weather", "content": "sunny, 21 C"},
            {"role": "assistant", "content": "Sunny and 21 C."},
        ],
    }
    [record] = read(tmp_path, row)
    masked = mask_record(tokenizer, record)
    call, answer = trained_texts(tokenizer, masked)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "P"}}\n</tool_call><|im_end|>\n' in call
    assert answer == "Sunny and 21 C.<|im_end|>\n"
    assert "<tool_response>\nsunny, 21 C" in masked_text(tokenizer, masked)
    assert [p.label for p in masked.parts] == ["user", "assistant 1", "tool", "assistant 2"]


def test_a_base_model_trains_the_completion_and_eos_and_refuses_several_turns(tokenizers, tmp_path):
    tokenizer = tokenizers["base"]
    [single] = read(tmp_path, {"prompt": "Q: 2 + 2?\nA:", "completion": " 4."})
    [multi] = read(tmp_path, {"messages": TWO_TURNS})
    masked = mask_record(tokenizer, single)
    assert tokenizer.decode(list(masked.tokens[masked.prompt_length :])).endswith("4.<|endoftext|>")
    assert [p.label for p in masked.parts] == ["prompt", "completion"]
    with pytest.raises(UserError, match="line 1: the model has no chat template"):
        mask_record(tokenizer, multi)


def test_text_trains_whole(tokenizers, tmp_path):
    [record] = read(tmp_path, {"text": "The quick brown fox."})
    masked = mask_record(tokenizers["llama"], record)
    assert masked.spans == ((0, len(masked.tokens)),) and masked.parts[0].label == "text"


def test_a_template_that_refuses_the_conversation_is_one_sentence_with_the_line(tokenizers, tmp_path):
    _, record = read(
        tmp_path,
        {"messages": TWO_TURNS},
        {"messages": [{"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Hello?"}]},
    )
    with pytest.raises(UserError, match=r"^line 2: the model's chat template refuses this conversation: .*alternate"):
        mask_record(tokenizers["gemma3"], record)


def test_a_template_that_rewrites_earlier_turns_is_refused_naming_the_record_and_turn(tokenizers, tmp_path):
    tokenizer = tokenizers["qwen2"]
    original = tokenizer._tokenizer.chat_template
    tokenizer._tokenizer.chat_template = (  # numbers each turn from the end: an earlier turn changes as turns come
        "{% for m in messages %}{{ '<|im_start|>' + m.role + ' ' + (loop.revindex | string) + '\n' + m.content "
        "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    try:
        [record] = read(tmp_path, {"messages": TWO_TURNS})
        with pytest.raises(UserError, match=r"^line 1: .*before assistant turn 1 differently once later turns follow"):
            mask_record(tokenizer, record)
    finally:
        tokenizer._tokenizer.chat_template = original


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return make_chat_family_model(tmp_path_factory.mktemp("cli") / "llama", "llama")


def test_data_check_show_mask_prints_each_part_trained_or_masked(llama_dir, isolated_home, tmp_path, capsys):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in (TWO_TURNS[1:3], TWO_TURNS)))
    assert main(["data", "check", str(path), "--model", str(llama_dir), "--show-mask", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("line 2 as the model reads it: ") and "(2 trained parts)" in out[0]
    headers = [line for line in out if line.startswith("── ")]
    assert [h.split(" · ")[0] for h in headers] == ["── system + user", "── assistant 1", "── user", "── assistant 2"]
    assert [h.split(" · ")[-1] for h in headers] == ["masked", "trained", "masked", "trained"]
    assert out[out.index(headers[1]) + 1] == "Paris.<|eot_id|>"


def test_show_mask_json_is_each_token_with_whether_it_trains(llama_dir, isolated_home, tmp_path, capsys):
    from mlx_lm import load

    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    assert main(["data", "check", str(path), "--model", str(llama_dir), "--show-mask", "1", "--json"]) == 0
    pieces = json.loads(capsys.readouterr().out)
    assert set(pieces[0]) == {"token", "trained"}
    tokenizer = load(str(llama_dir))[1]
    masked = mask_record(tokenizer, load_records(path)[0])
    assert [p["trained"] for p in pieces] == masked.trained()
    assert "".join(p["token"] for p in pieces if p["trained"]) == "".join(TRAINED_TURNS["llama"])


def test_show_mask_refusals_are_one_sentence(llama_dir, isolated_home, tmp_path, capsys):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"messages": TWO_TURNS}) + "\n{not json\n")
    assert main(["data", "check", str(path), "--show-mask", "1"]) == 1
    assert "--show-mask needs --model" in capsys.readouterr().err
    assert main(["data", "check", str(path), "--model", str(llama_dir), "--show-mask", "2"]) == 1
    assert f"{path}, line 2: invalid JSON" in capsys.readouterr().err
    assert main(["data", "check", str(path), "--model", str(llama_dir), "--show-mask", "9"]) == 1
    assert f"{path} has no record on line 9." in capsys.readouterr().err


def test_data_check_warns_once_when_the_template_drops_system_prompts(tmp_path, tmp_path_factory):
    from lora_tui.core.data.check import check_dataset
    from lora_tui.core.data.tokens import load_token_counter

    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"messages": TWO_TURNS}) + "\n" for _ in range(3)))
    folder = tmp_path_factory.mktemp("check")
    mistral = load_token_counter(make_chat_family_model(folder / "mistral", "mistral"))
    [warning] = [w for w in check_dataset(path, mistral).warnings if w.kind == "system-dropped"]
    assert warning.line == 1 and "has no place for this record's system prompt" in warning.message
    gemma = load_token_counter(make_chat_family_model(folder / "gemma3", "gemma3"))
    assert not [w for w in check_dataset(path, gemma).warnings if w.kind == "system-dropped"]


def test_a_config_that_names_only_endoftext_still_ends_phi3_turns_at_end(tmp_path_factory, tmp_path):
    from transformers import AutoTokenizer

    folder = make_chat_family_model(tmp_path_factory.mktemp("phi3") / "phi3", "phi3")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))  # no eos_token_ids list: EOS is <|endoftext|>
    [record] = read(tmp_path, {"messages": TWO_TURNS})
    assert trained_texts(tokenizer, mask_record(tokenizer, record)) == TRAINED_TURNS["phi3"]
