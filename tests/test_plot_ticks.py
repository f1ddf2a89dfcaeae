import pytest

from lora_tui.widgets.plot_ticks import whole_ticks


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (1, 1, [1]),
        (1, 3, [1, 2, 3]),
        (0, 7, [0, 2, 4, 6]),
        (1, 30, [10, 20, 30]),
        (1, 1000, [200, 400, 600, 800, 1000]),
        (0.0, 13.0, [0, 5, 10]),
    ],
)
def test_ticks_are_whole_round_and_few(low, high, ticks):
    assert whole_ticks(low, high) == ticks
