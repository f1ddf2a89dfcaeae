"""The footer every screen shows: its keys, compact, without the palette key (the area bar names Ctrl+P)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class AppFooter(Footer):
    """Textual's Footer, rebuilt only when the keys it shows change, and without its leak.

    Textual rebuilds the footer whenever a screen's bindings may have changed,
    which includes every switch to the screen; that rebuild was about half of
    an area switch here (median 57 ms with it, 31 ms without). Here the shown
    keys are compared first.

    The leak (Textualize/textual#6666): each rebuild makes new FooterKeys bound
    to `compact` with data_bind, which registers a watcher on this Footer that
    Textual prunes only when `compact` changes. So every old key stayed alive
    with all it held: 60 area switches kept ~146,000 objects, and full garbage
    collections, which stall the UI, grew slower the longer the app ran.
    Forgetting the watchers of keys that are gone before a rebuild ends that.
    """

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
        self._shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        if self._shown is not None and self._shown == self._keys_to_show(screen):
            return
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        self._forget_removed_keys()
        if self._bindings_ready:
            self._shown = self._keys_to_show(self.screen)
        yield from super().compose()

    @staticmethod
    def _keys_to_show(screen: Screen) -> tuple:
        return tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for _, binding, enabled, tooltip in screen.active_bindings.values()
            if binding.show
        )

    def _forget_removed_keys(self) -> None:
        watchers = getattr(self, "__watchers", {})  # where textual.reactive keeps watchers of this node
        for name, entries in watchers.items():
            watchers[name] = [(node, callback) for node, callback in entries if node.is_attached]
