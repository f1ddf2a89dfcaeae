import pytest

from lora_tui.core.errors import UserError
from lora_tui.core.locations import Locations
from lora_tui.core.names import validate_name
from lora_tui.settings import Settings


def test_lora_tui_home_moves_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_TUI_HOME", str(tmp_path / "elsewhere"))
    locations = Locations.from_environment().ensure()
    for folder in (
        locations.models_dir,
        locations.adapters_dir,
        locations.runs_dir,
        locations.config_dir,
        locations.cache_dir,
    ):
        assert folder.is_dir() and folder.is_relative_to(tmp_path / "elsewhere")
    assert locations.settings_file == tmp_path / "elsewhere" / "config" / "settings.toml"


def test_settings_round_trip(isolated_home):
    settings = Settings(model_dirs=["~/models", "/srv/mlx"], theme="lora-light")
    settings.save(isolated_home)
    assert Settings.load(isolated_home) == settings


def test_missing_settings_file_gives_defaults(isolated_home):
    assert Settings.load(isolated_home) == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("theme = 3\n", "'theme' must be a string"),
        ("colour = 'red'\n", "unknown setting 'colour'"),
        ("model_dirs = [1]\n", "'model_dirs' must be a list of strings"),
        ("theme = \n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_file_and_problem(isolated_home, text, message):
    isolated_home.config_dir.mkdir(parents=True)
    isolated_home.settings_file.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        Settings.load(isolated_home)
    assert str(isolated_home.settings_file) in str(error.value)


@pytest.mark.parametrize("name", ["my adapter", "SmolLM2-135M", "v_2"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "  ", "a/b", "a\\b", "..", "x..y", "semi;colon", "x" * 101])
def test_invalid_names(name):
    with pytest.raises(UserError):
        validate_name(name)
