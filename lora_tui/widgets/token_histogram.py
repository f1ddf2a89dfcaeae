"""Records per token-count bucket (plotext bars)."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from lora_tui.core.data.tokens import TokenStats
from lora_tui.widgets.plot_ticks import whole_ticks


class TokenHistogram(PlotextPlot):
    def show_stats(self, stats: TokenStats | None, bins: int = 10) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("records by token count")
        rows = stats.histogram(bins) if stats is not None else []
        if rows:
            counts = [count for _, _, count in rows]
            plt.bar([f"{high}" for _, high, _ in rows], counts, marker="sd")
            plt.yticks(whole_ticks(0, max(counts)))
            plt.xlabel("tokens (bucket upper edge)")
        self.refresh()
