"""Pilot tests of the Datasets screen: check report, record viewer, token budget, split, redact, documents."""

import json
import shutil

import pytest
from textual.widgets import DataTable, Input, OptionList, Select, Static, TabbedContent
from uikit import settle

from lora_tui.app import make_app
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.tokens import load_token_counter

CHAT = [
    {"messages": [{"role": "user", "content": "Where does Ada live?"}, {"role": "assistant", "content": "In Lisbon."}]},
    {
        "messages": [
            {"role": "user", "content": "Mail me at ada@example.com"},
            {"role": "assistant", "content": "Noted."},
        ]
    },
    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}]},
    {
        "messages": [
            {"role": "user", "content": "Call 555-867-5309 today"},
            {"role": "assistant", "content": "Will do."},
        ]
    },
]


@pytest.fixture
def chat_file(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHAT))
    return path


def _text(widget) -> str:
    return str(widget.render())


async def _open(pilot, path):
    await pilot.press("1")
    await settle(pilot)
    await pilot.press("o")  # the path box, from the keyboard
    box = pilot.app.screen.query_one("#dataset-path", Input)
    assert box.has_focus
    box.value = str(path)
    await pilot.press("enter")
    await pilot.pause()
    await settle(pilot)
    assert not box.has_focus  # the screen's keys work at once
    return pilot.app.screen


async def _dialog(pilot, path, key):
    """Open `path`, press an action key from the file tree, return the dialog it opens."""
    screen = await _open(pilot, path)
    screen.query_one("#dataset-tree").focus()
    await pilot.press(key)
    await pilot.pause()
    return pilot.app.screen


async def _no_model(pilot):
    """Without a model the check is the same, minus token counts."""
    screen = pilot.app.screen
    assert screen.query_one("#dataset-model", Select).value is Select.NULL


async def test_errors_are_listed_and_jump_to_their_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "broken\n{"text": 3}\n')
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot, bad)
        await _no_model(pilot)
        summary = _text(screen.query_one("#dataset-summary", Static))
        assert "1 valid of 3 records" in summary and "2 errors" in summary
        problems = screen.query_one("#problem-list", OptionList)
        labels = [str(problems.get_option_at_index(i).prompt) for i in range(problems.option_count)]
        assert labels[0].startswith("error   line 2: invalid JSON") and labels[1].startswith("error   line 3:")
        problems.focus()
        problems.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "tab-record"
        assert "line 3" in _text(screen.query_one("#record-position", Static))
        shown = _text(screen.query_one("#record-view", Static))
        assert shown.startswith("error: ") and '{"text": 3}' in shown
        await pilot.press("]")
        assert "line 1" in _text(screen.query_one("#record-position", Static))
    assert bad.read_text().count("\n") == 3  # the file is never touched


async def test_token_budget_and_chat_template_for_the_chosen_model(isolated_home, tiny_model_dir, chat_file):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, chat_file)
        assert screen.query_one("#dataset-model", Select).value == str(isolated_home.models_dir / "tiny")
        expected = check_dataset(chat_file, load_token_counter(tiny_model_dir)).tokens.to_json()
        table = screen.query_one("#token-table", DataTable)
        rows = {table.get_row_at(i)[0]: table.get_row_at(i)[1] for i in range(table.row_count)}
        assert rows["total"] == f"{expected['total']:,}" and rows["max"] == f"{expected['max']:,}"
        assert rows["counted by"] == expected["tokenizer"]
        shown = _text(screen.query_one("#record-view", Static))
        assert "user\nWhere does Ada live?" in shown and "assistant\nIn Lisbon." in shown
        # the template as the model reads it: the prompt masked, the answer and its end of turn trained
        assert "as the model reads it: " in shown and "1 trained part" in shown
        assert "<|im_start|>user\nWhere does Ada live?<|im_end|>" in shown
        assert "· masked\n<|im_start|>user\nWhere does Ada live?" in shown
        assert "assistant 1 · " in shown and "· trained\nIn Lisbon.<|im_end|>\n" in shown
    assert app.locations.recent_datasets_file.exists()


async def test_split_writes_train_and_valid_and_opens_them(chat_file, tmp_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await _dialog(pilot, chat_file, "s")
        dialog.query_one("#valid-fraction", Input).value = "0.25"
        dialog.query_one("#out-dir", Input).value = str(tmp_path / "parts")
        await pilot.click("#ok")
        await settle(pilot)
        assert (tmp_path / "parts" / "train.jsonl").read_text().count("\n") == 3
        assert (tmp_path / "parts" / "valid.jsonl").read_text().count("\n") == 1
        assert "train 3, valid 1" in _text(app.screen.query_one("#dataset-summary", Static))


async def test_split_dialog_names_a_bad_value_and_stays_open(chat_file):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await _dialog(pilot, chat_file, "s")
        dialog.query_one("#valid-fraction", Input).value = "lots"
        await pilot.click("#ok")
        await pilot.pause()
        assert "must be a number, not 'lots'" in _text(app.screen.query_one(".dialog-problem", Static))


async def test_redact_previews_before_writing(chat_file, tmp_path):
    original = chat_file.read_text()
    out = tmp_path / "clean.jsonl"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _dialog(pilot, chat_file, "r")
        dialog.query_one("#redact-out", Input).value = str(out)
        await settle(pilot)
        preview = _text(dialog.query_one("#redact-preview", Static))
        assert "3 of the 4 records would change" in preview  # names too: spaCy's pipeline is installed
        assert "ada@example.com" in preview and "[EMAIL]" in preview and "[PERSON]" in preview
        assert not out.exists()  # nothing is written before the user says so
        await pilot.click("#ok")
        await settle(pilot)
    assert "[EMAIL]" in out.read_text() and "[PHONE]" in out.read_text()
    assert chat_file.read_text() == original


async def test_documents_become_jsonl(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe first paragraph is here.\n\nThe second paragraph follows it.\n")
    out = tmp_path / "notes.jsonl"
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await _dialog(pilot, notes, "d")
        assert "is a document" in _text(app.screen_stack[-2].query_one("#dataset-summary", Static))
        assert dialog.query_one("#docs-source", Input).value == str(notes)
        assert dialog.query_one("#docs-out", Input).value == str(out)
        dialog.query_one("#docs-size", Input).value = "20"
        await pilot.click("#ok")
        await settle(pilot)
        assert "valid of" in _text(app.screen.query_one("#dataset-summary", Static))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(set(row) == {"text"} for row in rows)
    assert "second paragraph" in " ".join(row["text"] for row in rows)


async def test_a_missing_file_is_a_notice(tmp_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot, tmp_path / "nowhere.jsonl")
        assert "nowhere.jsonl" in _text(screen.query_one("#dataset-summary", Static))
        assert any("nowhere.jsonl" in str(n.message) for n in app._notifications)
        screen.query_one("#dataset-tree").focus()
        await pilot.press("2")  # the app keeps running
        assert app.current_mode == "train"


async def test_a_missing_path_after_a_good_file_leaves_nothing_of_it(chat_file, tmp_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot, chat_file)
        assert screen.query_one("#problem-list", OptionList).option_count
        await _open(pilot, tmp_path / "nope.jsonl")
        problems = screen.query_one("#problem-list", OptionList)
        assert [str(problems.get_option_at_index(i).prompt) for i in range(problems.option_count)] == [
            "No dataset open."
        ]
        assert screen.query_one("#token-table", DataTable).row_count == 0
        assert _text(screen.query_one("#record-position", Static)) == "No records."
        screen.query_one("#dataset-tree").focus()
        await pilot.press("t")
        await settle(pilot)
        assert app.current_mode == "datasets"
        assert any("Open a dataset first" in str(n.message) for n in app._notifications)


async def test_train_on_the_open_dataset(chat_file):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, chat_file)
        screen.query_one("#dataset-tree").focus()
        await pilot.press("t")
        await settle(pilot)
        assert app.current_mode == "train"
        assert app.screen.query_one("#pick-data", Input).value == str(chat_file)
        assert app.screen.query_one("#pick-name", Input).value == "chat"


async def test_the_tabs_have_keys_shown_in_the_footer(chat_file):
    from textual.widgets._footer import FooterKey

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, chat_file)
        screen.query_one("#dataset-tree").focus()
        await pilot.pause()
        shown = {key.key for key in screen.query(FooterKey)}
        assert {"p", "k", "v"} <= shown, shown  # one "Tabs" group in the footer
        tabs = screen.query_one(TabbedContent)
        for key, tab in (("k", "tab-tokens"), ("v", "tab-record"), ("p", "tab-problems")):
            await pilot.press(key)
            assert tabs.active == tab


async def test_a_newcomer_is_offered_the_demo_dataset(isolated_home, tmp_path):
    from lora_tui.settings import Settings

    app = make_app(isolated_home, Settings(datasets_root=str(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1")
        await settle(pilot)
        offer = app.screen.query_one("#recent-list", OptionList)
        assert offer.get_option_at_index(0).id == "demo-dataset"
        await pilot.press("shift+tab", "enter")  # keys only: back from the file tree to the offer, and take it
        assert app.focused is offer
        await settle(pilot)
        await settle(pilot)
        assert "train 48, valid 16, test 16" in _text(app.screen.query_one("#dataset-summary", Static))
    assert (tmp_path / "lora-tui-demo" / "test.jsonl").is_file()


async def test_a_preference_file_shows_both_answers_and_each_sides_tokens(isolated_home, tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Name a colour.", "chosen": "Blue, I think.", "rejected": "No."}) + "\n")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, pairs)
        assert "preference, 1 valid of 1 records" in _text(screen.query_one("#dataset-summary", Static))
        shown = _text(screen.query_one("#record-view", Static))
        assert "assistant (chosen)\nBlue, I think." in shown and "assistant (rejected)\nNo." in shown
        table = screen.query_one("#token-table", DataTable)
        rows = {table.get_row_at(i)[0]: table.get_row_at(i)[1] for i in range(table.row_count)}
        expected = check_dataset(pairs, load_token_counter(tiny_model_dir)).tokens.to_json()
        assert rows["chosen median / max"] == f"{expected['chosen']['median']:,.0f} / {expected['chosen']['max']:,}"
        assert {"prompt median / max", "rejected median / max"} <= rows.keys()


async def test_a_table_without_known_columns_asks_for_a_mapping_and_remembers_it(isolated_home, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lora_tui.core.data.columns import SavedColumns
    from lora_tui.screens.dataset_dialogs import ColumnsDialog

    table = tmp_path / "faq.parquet"
    rows = [
        {"question": f"Is {i} even?", "answer": "Yes, it is." if i % 2 == 0 else "No, it is not."} for i in range(6)
    ]
    pq.write_table(pa.Table.from_pylist(rows), table)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(pilot, table)
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ColumnsDialog)
        sample = _text(dialog.query_one("#columns-sample", Static))
        assert "question" in sample and "Is 0 even?" in sample
        box = dialog.query_one("#columns-map", Input)
        assert box.value == "prompt=question,completion=answer"  # the proposal, ready to confirm
        box.value = "prompt=question,completion=answr"
        box.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog and "no column 'answr'" in _text(dialog.query_one(".dialog-problem", Static))
        box.value = "prompt=question,completion=answer"
        await pilot.press("enter")
        await settle(pilot)
        summary = _text(app.screen.query_one("#dataset-summary", Static))
        assert "completion (parquet, columns prompt=question,completion=answer), 6 valid of 6 records" in summary
        assert SavedColumns(isolated_home.column_maps_file).get(table) == {"prompt": "question", "completion": "answer"}
        app.screen.query_one("#dataset-tree").focus()
        await pilot.press("t")
        await settle(pilot)
        assert app.screen.query_one("#param-columns", Input).value == "prompt=question,completion=answer"
        for _ in range(100):
            if app.screen.dataset_problem() != "checking the dataset ...":
                break
            await pilot.pause(0.05)
        assert app.screen.dataset_problem() is None  # the form checked the table through the mapping


async def test_question_answer_pairs_preview_then_write_on_the_tiny_model(isolated_home, tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    notes = tmp_path / "notes.md"
    notes.write_text("The first paragraph is here.\n\nThe second paragraph follows it.\n")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _dialog(pilot, notes, "g")
        assert dialog.query_one("#synth-out", Input).value == str(tmp_path / "notes.qa.jsonl")
        for _ in range(600):
            preview = _text(dialog.query_one("#synth-preview", Static))
            if not preview.startswith("Writing pairs"):
                break
            await pilot.pause(0.1)
        assert "pairs kept from the first 1 of 1 chunks" in preview  # a random model writes no usable pair
        pairs_box = dialog.query_one("#synth-pairs", Input)
        pairs_box.value = "1"
        pairs_box.focus()
        await pilot.press("enter")  # the dialog's own action, as its button
        for _ in range(600):
            if any("Wrote" in str(n.message) for n in app._notifications):
                break
            await pilot.pause(0.1)
        notices = [str(n.message) for n in app._notifications]
        summary = _text(app.screen.query_one("#dataset-summary", Static))
        assert (tmp_path / "notes.qa.jsonl").exists(), (notices, summary)
        assert (tmp_path / "notes.qa.sources.jsonl").exists()
        assert any("Wrote" in str(n.message) and "pairs kept" in str(n.message) for n in app._notifications)
