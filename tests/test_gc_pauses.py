"""Freezing long-lived objects out of garbage collection must not keep dead ones forever."""

import gc
import weakref

from lora_tui.gc_pauses import freeze_long_lived_objects


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_objects_frozen_then_dropped_are_freed_at_the_next_freeze():
    try:
        node = Node()
        alive = weakref.ref(node)
        freeze_long_lived_objects()
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None  # frozen: the collector does not see it
        freeze_long_lived_objects()
        assert alive() is None
    finally:
        gc.unfreeze()
