"""The Datasets and Chat screens on the real demo model."""

import json

import pytest
from textual.widgets import DataTable, Input
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.tokens import load_token_counter

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo_home(isolated_home, demo_model_dir):
    isolated_home.models_dir.mkdir(parents=True)
    (isolated_home.models_dir / demo_model_dir.name).symlink_to(demo_model_dir)
    return isolated_home


async def test_token_budget_of_the_demo_model(demo_home, demo_model_dir, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Question {i}: what is {i} squared?"},
                        {"role": "assistant", "content": f"{i * i}."},
                    ]
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    expected = check_dataset(data, load_token_counter(demo_model_dir)).tokens.to_json()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1")
        await settle(pilot)
        box = app.screen.query_one("#dataset-path", Input)
        box.value = str(data)
        box.focus()
        await pilot.press("enter")
        await settle(pilot)
        table = app.screen.query_one("#token-table", DataTable)
        rows = {table.get_row_at(i)[0]: table.get_row_at(i)[1] for i in range(table.row_count)}
        assert rows["total"] == f"{expected['total']:,}" and rows["counted by"] == "tiktoken"
        shown = str(app.screen.query_one("#record-view").render())
        assert "<|im_start|>assistant\n\nassistant 1 · " in shown  # the prompt masked up to the answer
        assert "· trained\n0.<|im_end|>\n" in shown  # then the answer and its end of turn, trained


async def test_chat_answers_with_the_demo_model(demo_home):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#sampling-temperature", Input).value = "0"
        box = screen.query_one("#chat-input", Input)
        box.value = "What is the capital of France?"
        await pilot.press("enter")
        await pilot.pause()
        await wait_until(lambda: not screen.generating, "the demo model's reply", timeout=300)
        await settle(pilot)
        assert "Paris" in screen.sides["a"].history[-1].content
