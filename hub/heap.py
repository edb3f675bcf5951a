"""Garbage-collector settings for the hub's long-running processes.

Measured with bench/webchat.py: with CPython's defaults, the hub's event loop spent about a
seventh of its CPU time in the collector. A full collection walked the whole start-up heap
(modules, the knowledge-base index) and stopped the loop for 130-190 ms about once a second,
and the pipeline behind it (the storage writer process, the customers' sockets) stood still
meanwhile. Each in-flight message holds a few dozen container objects for a few
milliseconds. With a young generation of 700, they were collected, and promoted, while
still alive.
"""

from __future__ import annotations

import gc

# Objects allocated between two young-generation collections (CPython's default is 700).
YOUNG_GENERATION = 20_000


def settle() -> None:
    """Call once start-up is done: what exists now is kept out of every collection, and
    young objects get time to die before a collection looks at them."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)
