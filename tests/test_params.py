"""One table of training parameters for flags, config files and the form."""

import re

import pytest

from lora_tui.core.errors import UserError
from lora_tui.core.training.params import PARAMS, PARAMS_BY_NAME, build_params, load_config

BRIEF = {"rank": (4, 128, 8), "learning_rate": (0.00001, 0.01, 0.0001), "epochs": (1, 50, 3), "batch_size": (1, 32, 4)}


@pytest.mark.parametrize("name", BRIEF)
def test_product_brief_ranges_and_defaults(name):
    low, high, default = BRIEF[name]
    param = PARAMS_BY_NAME[name]
    assert (param.low, param.high, param.default) == (low, high, default)
    assert build_params({name: low}).values[name] == low and build_params({name: high}).values[name] == high
    for bad in (low - (1 if isinstance(low, int) else low / 2), high * 2):
        with pytest.raises(UserError, match=f"between {low:g} and {high:g}"):
            build_params({name: bad})


def test_every_parameter_has_help_and_a_valid_default():
    defaults = build_params()
    for param in PARAMS:
        assert param.help.strip() and param.flag.startswith("--")
        assert param.name in defaults.values
    assert defaults.alpha is None and defaults.scale == 2.0  # alpha defaults to 2 x rank
    assert build_params({"rank": 16, "alpha": 16}).scale == 1.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"target_modules": "q,x"}, "choose one or more of q, k, v, o, gate, up, down"),
        ({"optimizer": "sgd"}, "'sgd' is not one of adam, adamw"),
        ({"pack": "maybe"}, "pack must be on or off (got 'maybe')"),
        ({"epochs": 2.5}, "epochs must be a whole number (got 2.5)"),
        ({"colour": 1}, "unknown training parameter 'colour'"),
    ],
)
def test_bad_values_name_the_parameter(values, message):
    with pytest.raises(UserError, match=re.escape(message)):
        build_params(values)


def test_form_strings_parse_like_flags():
    params = build_params(
        {"rank": "16", "learning_rate": "3e-4", "pack": "on", "target_modules": "q, v", "num_layers": "-1"}
    )
    assert (params.rank, params.learning_rate, params.pack, params.target_modules, params.num_layers) == (
        16,
        3e-4,
        True,
        ["q", "v"],
        -1,
    )


def test_config_file_and_flags(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('rank = 32\nlearning_rate = 5e-4\ntarget_modules = ["q", "k", "v", "o", "gate"]\n')
    params = build_params(load_config(config), {"rank": 16})
    assert (params.rank, params.learning_rate, params.target_modules[-1]) == (16, 5e-4, "gate")
    round_trip = tmp_path / "saved.toml"
    round_trip.write_text(params.to_toml())
    assert build_params(load_config(round_trip)) == params


def test_bad_config_file_names_itself(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("rank = 1000\n")
    with pytest.raises(UserError, match=re.escape(f"{config}: rank must be between 4 and 128 (got 1000).")):
        load_config(config)
    config.write_text("rank = \n")
    with pytest.raises(UserError, match=r"bad\.toml: not valid TOML"):
        load_config(config)
