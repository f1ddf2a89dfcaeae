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


def test_the_smoothed_loss_follows_the_trend_not_the_noise():
    import itertools

    from lora_tui.widgets.loss_chart import smoothed

    noisy = [(step, 2.0 - step * 0.01 + (0.5 if step % 2 else -0.5)) for step in range(1, 101)]
    line = smoothed(noisy)
    assert line[0] == noisy[0]  # no pull towards zero at the start
    swings = [abs(b[1] - a[1]) for a, b in itertools.pairwise(line[50:])]
    assert max(swings) < 0.5  # the raw points swing by 1.0 each step
    assert line[-1][1] < line[10][1]  # and it still goes down
