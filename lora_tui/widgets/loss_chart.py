"""Train and validation loss over steps (plotext); on demand, the learning rate, or for preference
training the reward margin and the share of pairs ranked right; in GRPO the mean reward.

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
        self.margins: dict[str, list[tuple[int, float]]] = {"train": [], "valid": []}
        self.accuracies: dict[str, list[tuple[int, float]]] = {"train": [], "valid": []}
        self.rewards: dict[str, list[tuple[int, float]]] = {"train": [], "valid": []}  # grpo: mean total reward
        self.view = "loss"  # or "learning rate", "rewards"
        self.stale = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self.draw_if_stale)

    def clear(self) -> None:
        self.train, self.valid, self.rates = [], [], []
        self.margins, self.accuracies = {"train": [], "valid": []}, {"train": [], "valid": []}
        self.rewards = {"train": [], "valid": []}
        self.redraw()

    def keep_until(self, step: int) -> None:
        """Drop what came after `step` (a resumed run does those steps again, from its checkpoint)."""

        def kept(points):
            return [point for point in points if point[0] <= step]

        self.train, self.valid, self.rates = kept(self.train), kept(self.valid), kept(self.rates)
        self.margins = {split: kept(points) for split, points in self.margins.items()}
        self.accuracies = {split: kept(points) for split, points in self.accuracies.items()}
        self.rewards = {split: kept(points) for split, points in self.rewards.items()}
        self.redraw()

    def add_train(
        self,
        step: int,
        loss: float,
        learning_rate: float,
        margin: float | None = None,
        accuracy: float | None = None,
        reward: float | None = None,
    ) -> None:
        self.train.append((step, loss))
        self.rates.append((step, learning_rate))
        self._add_rewards("train", step, margin, accuracy, reward)
        self.redraw()

    def add_valid(
        self, step: int, loss: float, margin: float | None = None, accuracy: float | None = None, reward=None
    ) -> None:
        self.valid.append((step, loss))
        self._add_rewards("valid", step, margin, accuracy, reward)
        self.redraw()

    def _add_rewards(self, split: str, step: int, margin, accuracy, reward) -> None:
        if margin is not None and accuracy is not None:
            self.margins[split].append((step, margin))
            self.accuracies[split].append((step, accuracy))
        if reward is not None:
            self.rewards[split].append((step, reward))

    @property
    def has_rewards(self) -> bool:
        return any(self.margins.values()) or any(self.rewards.values())

    def toggle_learning_rate(self) -> None:
        self.toggle("learning rate")

    def toggle(self, view: str) -> None:
        """Show `view` instead of the loss, or the loss again."""
        self.view = "loss" if self.view == view else view
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
        if self.view == "learning rate":
            plt.title("learning rate")
            if self.rates:
                plt.plot(*zip(*self.rates, strict=True), label="lr", marker="braille")
        elif self.view == "rewards":
            self.draw_rewards()
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

    def draw_rewards(self) -> None:
        """Reward margin (left axis) and pairs ranked right (right axis, 0-1), train smoothed and valid;
        for GRPO, the sampled answers' mean reward (smoothed) and the held-out greedy answers'."""
        plt = self.plt
        if any(self.rewards.values()):
            plt.title("reward: sampled answers, and held-out greedy answers")
            if self.rewards["train"]:
                plt.scatter(*zip(*self.rewards["train"], strict=True), marker="braille")
                plt.plot(*zip(*smoothed(self.rewards["train"]), strict=True), label="train (smoothed)", marker="hd")
            if self.rewards["valid"]:
                plt.plot(*zip(*self.rewards["valid"], strict=True), label="valid", marker="dot")
            return
        plt.title("reward margin (left), accuracy (right)")
        if self.margins["train"]:
            plt.plot(*zip(*smoothed(self.margins["train"]), strict=True), label="margin (smoothed)", marker="hd")
            plt.plot(
                *zip(*smoothed(self.accuracies["train"]), strict=True),
                label="accuracy",
                marker="braille",
                yside="right",
            )
        if self.margins["valid"]:
            plt.plot(*zip(*self.margins["valid"], strict=True), label="valid margin", marker="dot")
            plt.plot(*zip(*self.accuracies["valid"], strict=True), label="valid accuracy", marker="x", yside="right")
        if not self.margins["train"]:
            plt.title("rewards: only preference training (dpo, orpo) and grpo have them")
