"""Keep garbage-collector pauses on the UI thread short.

Measured here while the demo model trained: full collections of 250-360 ms,
one every few steps, each a key press that waited. A full collection walks
every object the collector tracks, and a loaded model (tokenizer, module tree)
and the app's widgets are many. Objects that live as long as the app or the
loaded model are moved out of the collector's sight once they exist, so later
full collections only walk what is new (20-100 ms here).

(Raising the collection thresholds instead made the middle generation's
collections take 260-400 ms: worse.)
"""

from __future__ import annotations

import gc


def freeze_long_lived_objects() -> None:
    """Exempt every object alive now from later collections, after collecting what is garbage.

    Earlier frozen objects are thawed first and collected if they have become
    garbage since (a model that was replaced, a run that ended): frozen objects
    in reference cycles would otherwise never be freed.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
