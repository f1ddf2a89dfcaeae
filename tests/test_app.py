"""The app opens and shows the models lora-tui finds."""

import shutil

from textual.widgets import DataTable, Static

from lora_tui.app import make_app


async def test_app_lists_models(isolated_home, tiny_model_dir):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    app = make_app()
    async with app.run_test(size=(100, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#models", DataTable)
        assert table.row_count == 1
        assert table.get_row_at(0)[0] == "tiny"


async def test_app_without_models_says_how_to_get_one(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "models demo" in str(app.query_one("#models-hint", Static).render())
        await pilot.press("q")
    assert app.return_code == 0
