"""Records per token-count bucket (plotext bars), with the max sequence length marked."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from lora_tui.core.tokens import TokenStats


class TokenHistogram(PlotextPlot):
    def show_stats(self, stats: TokenStats | None, bins: int = 10) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("records by token count")
        rows = stats.histogram(bins) if stats is not None else []
        if rows:
            plt.bar([f"{high}" for _, high, _ in rows], [count for _, _, count in rows], marker="sd")
            plt.xlabel("tokens (bucket upper edge)")
        self.refresh()
