"""Stop strings on streamed text: hold back only what could still become a stop string."""

from __future__ import annotations


class StopText:
    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self._held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """The text that is safe to send now, and whether a stop string was reached (its text is not sent)."""
        text = self._held + piece
        self._held = ""
        found = [text.find(stop) for stop in self.stops if stop in text]
        if found:
            return text[: min(found)], True
        keep = self._partial_stop_length(text)
        if keep:
            text, self._held = text[:-keep], text[-keep:]
        return text, False

    def rest(self) -> str:
        """What was held back, once the answer has ended without reaching a stop string."""
        text, self._held = self._held, ""
        return text

    def _partial_stop_length(self, text: str) -> int:
        """The length of the longest end of `text` that is the start of a stop string."""
        longest = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:length]):
                    longest = length
                    break
        return longest
