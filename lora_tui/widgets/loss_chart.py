"""Train and validation loss over steps (plotext), learning rate on demand.

Points arrive as fast as training steps (dozens a second on small models);
the plot is redrawn at most REDRAW_SECONDS apart so key presses never queue
behind redraws.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

from lora_tui.widgets.plot_ticks import whole_ticks

REDRAW_SECONDS = 0.2
SMOOTHING = 0.8  # weight of the running average, as training dashboards smooth their loss curves


def smoothed(points: list[tuple[int, float]], weight: float = SMOOTHING) -> list[tuple[int, float]]:
    """An exponential moving average of the values, corrected for its start (so the first points are not pulled
    towards zero)."""
    average, result = 0.0, []
    for count, (step, value) in enumerate(points, start=1):
        average = weight * average + (1 - weight) * value
        result.append((step, average / (1 - weight**count)))
    return result


class LossChart(PlotextPlot):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train: list[tuple[int, float]] = []
        self.valid: list[tuple[int, float]] = []
        self.rates: list[tuple[int, float]] = []
        self.show_learning_rate = False
        self.stale = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self.draw_if_stale)

    def clear(self) -> None:
        self.train, self.valid, self.rates = [], [], []
        self.redraw()

    def add_train(self, step: int, loss: float, learning_rate: float) -> None:
        self.train.append((step, loss))
        self.rates.append((step, learning_rate))
        self.redraw()

    def add_valid(self, step: int, loss: float) -> None:
        self.valid.append((step, loss))
        self.redraw()

    def toggle_learning_rate(self) -> None:
        self.show_learning_rate = not self.show_learning_rate
        self.redraw()

    def redraw(self) -> None:
        self.stale = True

    def draw_if_stale(self) -> None:
        if not self.stale:
            return
        self.stale = False
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        if self.show_learning_rate:
            plt.title("learning rate")
            if self.rates:
                plt.plot(*zip(*self.rates, strict=True), label="lr", marker="braille")
        else:
            plt.title("loss")
            if self.train:
                # per-step losses are noisy: faint raw points, and a smoothed line over them
                plt.scatter(*zip(*self.train, strict=True), marker="braille")
                plt.plot(*zip(*smoothed(self.train), strict=True), label="train (smoothed)", marker="hd")
            if self.valid:
                plt.plot(*zip(*self.valid, strict=True), label="valid", marker="dot")
        if self.train:
            plt.xticks(whole_ticks(self.train[0][0], self.train[-1][0]))
        self.refresh()
