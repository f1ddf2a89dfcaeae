"""Pilot tests of the Chat screen: real generation from the tiny model and an adapter trained on it."""

import asyncio
import json
import shutil

import pytest
from generation import complete
from textual.widgets import Input, Markdown, Select
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.core.adapters.layout import METADATA
from lora_tui.core.data.check import check_dataset
from lora_tui.core.inference.generate import Generator, Sampling, Turn

PROMPT = "What is 3 plus 3?"
GREEDY = {"temperature": "0", "max_tokens": "12"}
CHAT_ROW = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


@pytest.fixture
def chat_home(isolated_home, tiny_model_dir, tiny_adapter):
    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    return isolated_home


async def _chat(pilot, model_value=None, **sampling):
    await pilot.press("5")
    await settle(pilot)
    screen = pilot.app.screen
    if model_value is not None:
        screen.query_one("#chat-model-a", Select).choose(model_value)
    for name, value in {**GREEDY, **sampling}.items():
        screen.query_one(f"#sampling-{name}", Input).value = value
    return screen


async def _ask(pilot, text):
    screen = pilot.app.screen
    box = screen.query_one("#chat-input", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    await pilot.pause()
    await wait_until(lambda: not screen.generating, "the reply to end", timeout=60)
    await settle(pilot)


def _expected(model_dir, adapter_dir=None, history=None):
    history = history or [Turn("user", PROMPT)]
    generator = Generator(model_dir)
    generator.use_adapter(adapter_dir)
    return complete(generator, list(history), Sampling(temperature=0.0, max_tokens=12))[0]


async def test_streams_a_real_reply_with_its_speed(chat_home, tiny_model_dir):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        reply = screen.sides["a"].history[-1]
        assert reply.role == "assistant" and reply.content == _expected(tiny_model_dir)
        assert screen.query_one(".assistant-turn", Markdown).source == reply.content
        stats = str(screen.query_one("#chat-stats").render())
        assert "tokens, first after" in stats and "tok/s" in stats
        await _ask(pilot, "And 4 plus 4?")  # the history goes with the next question
        assert [t.role for t in screen.sides["a"].history] == ["user", "assistant", "user", "assistant"]


async def test_adapter_and_compare_side_by_side(chat_home, tiny_model_dir, tiny_adapter):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, "lora:arith")
        await pilot.press("ctrl+b")
        await settle(pilot)
        screen.query_one("#chat-model-b", Select).choose(str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        adapter_reply, base_reply = screen.sides["a"].history[-1].content, screen.sides["b"].history[-1].content
        assert adapter_reply == _expected(tiny_model_dir, tiny_adapter)
        assert base_reply == _expected(tiny_model_dir)
        assert adapter_reply != base_reply
        assert "a: " in str(screen.query_one("#chat-stats").render()) and "b: " in str(
            screen.query_one("#chat-stats").render()
        )


async def test_stop_ends_the_reply_and_keeps_it(chat_home, tiny_model_dir, monkeypatch):
    original = Generator.stream

    def slow_stream(self, *args, **kwargs):
        for piece in original(self, *args, **kwargs):
            import time

            time.sleep(0.05)
            yield piece

    monkeypatch.setattr(Generator, "stream", slow_stream)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(tiny_model_dir), max_tokens="400", temperature="1.0", seed="1")
        box = screen.query_one("#chat-input", Input)
        box.value = PROMPT
        await pilot.press("enter")
        await wait_until(lambda: screen.sides["a"].reply, "the first words of the reply", timeout=60)
        await pilot.press("escape")
        await wait_until(lambda: not screen.generating, "the stopped reply to end", timeout=60)
        await settle(pilot)
        assert "(cancelled)" in str(screen.query_one("#chat-stats").render())
        assert screen.sides["a"].history[-1].role == "assistant"


async def test_save_the_exchange_as_a_training_example(chat_home, tiny_model_dir, tmp_path):
    examples = tmp_path / "examples.jsonl"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        for _ in range(2):
            await pilot.press("ctrl+s")
            await pilot.pause()
            app.screen.query_one("#example-path", Input).value = str(examples)
            await pilot.press("enter")
            await pilot.pause()
        reply = screen.sides["a"].history[-1].content
    rows = [json.loads(line) for line in examples.read_text().splitlines()]
    assert rows == [{"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": reply}]}] * 2
    assert reply.strip() and check_dataset(examples).ok


async def test_appending_to_a_file_of_another_format_is_refused(chat_home, tiny_model_dir, tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "plain"}\n')
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _chat(pilot, str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#example-path", Input).value = str(texts)
        await pilot.press("enter")
        await pilot.pause()
        assert any("will not append a chat record (it is in text format)" in str(n.message) for n in app._notifications)
    assert texts.read_text() == '{"text": "plain"}\n'


async def test_an_adapter_whose_base_is_gone_is_a_notice(chat_home, tiny_model_dir):
    meta_file = chat_home.adapters_dir / "arith" / METADATA
    meta = json.loads(meta_file.read_text())
    meta.update(base_model="gone-model", base_model_path="/nowhere/gone-model")
    meta_file.write_text(json.dumps(meta))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, "lora:arith")
        await _ask(pilot, PROMPT)
        assert any("base model of 'arith' is missing" in str(n.message) for n in app._notifications)
        assert screen.query_one("#chat-input", Input).value == PROMPT  # the message is kept to send again
        screen.query_one("#chat-model-a", Select).choose(str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        assert screen.sides["a"].history[-1].role == "assistant"


async def test_a_model_that_fails_to_load_is_a_notice(chat_home, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(broken))
        await _ask(pilot, PROMPT)
        assert any("failed to load" in str(n.message) or "cannot load" in str(n.message) for n in app._notifications), [
            str(n.message) for n in app._notifications
        ]
        assert screen.sides["a"].history == []  # the question was not answered, and is not sent twice
        screen.query_one("#chat-model-a", Select).choose(str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        assert [t.role for t in screen.sides["a"].history] == ["user", "assistant"]


async def test_a_replaced_base_model_is_freed(chat_home, tiny_model_dir, tmp_path):
    """Loaded models are frozen out of garbage collection (short UI pauses);
    switching bases must still free the old one."""
    import gc
    import weakref

    other_base = tmp_path / "other-base"
    shutil.copytree(tiny_model_dir, other_base)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        first = weakref.ref(screen.generator)
        assert gc.get_freeze_count() > 0
        screen.query_one("#chat-model-a", Select).choose(str(other_base))
        await _ask(pilot, PROMPT)
        assert screen.generator.model_path == other_base
        assert first() is None


async def _mark(pilot, key, pairs_file=None):
    await pilot.press(key)
    await pilot.pause()
    if pairs_file is not None:  # the first pair asks where the pairs go
        pilot.app.screen.query_one("#pairs-path", Input).value = str(pairs_file)
        await pilot.press("enter")
        await pilot.pause()


async def test_compare_marks_the_better_answer_as_a_preference_pair(chat_home, tiny_model_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, "lora:arith")
        assert "ctrl+r" not in {b.binding.key for b in screen.active_bindings.values() if b.enabled}
        await pilot.press("ctrl+b")
        await settle(pilot)
        screen.query_one("#chat-model-b", Select).choose(str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        shown = {b.binding.key: b.binding.description for b in screen.active_bindings.values() if b.enabled}
        assert shown["ctrl+l"] == "A wins" and shown["ctrl+r"] == "B wins"
        await _mark(pilot, "ctrl+r", pairs)
        await _mark(pilot, "ctrl+r")  # the same pair again: refused
        adapter_reply, base_reply = screen.sides["a"].history[-1].content, screen.sides["b"].history[-1].content
        messages = [str(n.message) for n in app._notifications]
    assert f"Pair saved as line 1 of {pairs} (b chosen)." in messages
    assert "This pair is saved already." in messages
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert rows == [{"prompt": [{"role": "user", "content": PROMPT}], "chosen": base_reply, "rejected": adapter_reply}]
    assert check_dataset(pairs).format == "preference"


async def test_try_again_answers_twice_and_the_chosen_answer_goes_on(chat_home, tiny_model_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(tiny_model_dir), temperature="1.0", seed="7")
        await _ask(pilot, PROMPT)
        first = screen.sides["a"].history[-1].content
        await pilot.press("ctrl+t")
        await pilot.pause()
        await wait_until(lambda: not screen.generating, "the second answer", timeout=60)
        await settle(pilot)
        second = screen.sides["b"].history[-1].content
        assert first != second
        await _mark(pilot, "ctrl+r", pairs)
        assert screen.sides["a"].history[-1].content == second  # the conversation goes on from the chosen answer
        await _ask(pilot, "And 4 plus 4?")
        assert not screen.second_try and not screen.check_action("prefer", ("a",))
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert rows == [{"prompt": [{"role": "user", "content": PROMPT}], "chosen": second, "rejected": first}]


async def test_chat_talks_to_the_running_server_as_any_client_does(chat_home, tiny_model_dir):
    from lora_tui.core.serving.plan import plan_serving
    from lora_tui.core.serving.server import serve_in_background

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        plan = plan_serving(chat_home.adapters_dir, chat_home.models_dir, [], str(tiny_model_dir))
        app.service = await asyncio.to_thread(serve_in_background, plan, "127.0.0.1", 0)
        try:
            screen = await _chat(pilot)
            picker = screen.query_one("#chat-model-a", Select)
            await wait_until(lambda: "served:arith" in picker.values, "the served models in the picker")
            picker.value = "served:arith"
            await _ask(pilot, PROMPT)
            reply = screen.sides["a"].history[-1]
            assert app.service.requests_served == 1
            assert reply.content == _expected(tiny_model_dir, chat_home.adapters_dir / "arith")
            assert "tok/s" in str(screen.query_one("#chat-stats").render())
        finally:
            await asyncio.to_thread(app.service.stop)


async def test_compare_asks_before_clearing_and_a_new_folder_is_asked_for(chat_home, tiny_model_dir, tmp_path):
    from lora_tui.screens.dialogs import ConfirmDialog

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(tiny_model_dir))
        await _ask(pilot, PROMPT)
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and not screen.compare
        await pilot.press("escape")
        assert screen.sides["a"].history and not screen.compare  # kept: the user said no
        await pilot.press("ctrl+s")
        await pilot.pause()
        target = tmp_path / "new-folder" / "examples.jsonl"
        app.screen.query_one("#example-path", Input).value = str(target)
        app.screen.action_submit()
        await pilot.pause()
        assert "does not exist: Append again creates it" in str(app.screen.query_one(".dialog-problem").render())
        app.screen.action_submit()
        await settle(pilot)
        assert len(target.read_text().splitlines()) == 1


async def test_bad_settings_are_marked_as_typed_and_an_adapters_system_prompt_is_filled(chat_home, tmp_path):
    from textual.widgets import Static, TextArea

    from lora_tui.core.adapters.layout import read_metadata, write_metadata

    data = tmp_path / "with-system.jsonl"
    row = {"messages": [{"role": "system", "content": "You are terse."}, *CHAT_ROW]}
    data.write_text(json.dumps(row) + "\n")
    folder = chat_home.adapters_dir / "arith"
    write_metadata(folder, {**read_metadata(folder), "dataset": str(data)})
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot)
        temperature = screen.query_one("#sampling-temperature", Input)
        temperature.value = "hot"
        await settle(pilot)
        assert temperature.has_class("-bad-value")
        assert "temperature must be a number" in str(screen.query_one("#sampling-problem", Static).render())
        temperature.value = "0"
        await settle(pilot)
        assert not temperature.has_class("-bad-value")
        screen.query_one("#chat-model-a", Select).value = "lora:arith"
        await settle(pilot)
        assert screen.query_one("#system-prompt", TextArea).text == "You are terse."


async def test_a_base_model_chats_as_plain_completion_and_the_stats_say_so(chat_home, tmp_path):
    from familytemplates import make_chat_family_model

    base = make_chat_family_model(tmp_path / "base", "base")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _chat(pilot, str(base))
        await _ask(pilot, "The capital of France is")
        assert screen.sides["a"].history[-1].role == "assistant"
        assert "no chat template: plain completion" in str(screen.query_one("#chat-stats").render())
