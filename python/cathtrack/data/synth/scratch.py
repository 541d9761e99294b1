"""Per-thread scratch arrays, reused from frame to frame.

A frame needs a dozen full-frame temporaries (4 MB at 256 x 256, 15 MB at 512 x 512). Allocated
anew for each frame, they cost more than the arithmetic done in them: glibc hands the freed top
of its heap back to the kernel after every frame and the next frame page-faults it in again
(about a fifth of a 256 px frame's CPU time went to that). Arrays taken from here stay mapped.

They are per thread (threaded data loaders may render concurrently) and their contents are only
valid until the next request for the same name: use them for temporaries, never return one.
"""

from __future__ import annotations

import math
import threading

import numpy as np


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.by_name: dict[str, np.ndarray] = {}


_BUFFERS = _Buffers()


def scratch(name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype``, contents undefined, from this thread's
    buffer ``name``.

    The buffer only grows (a request for fewer elements is a view of its start), so one name
    serves arrays of varying shapes, such as regions of interest.
    """
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    buffer = _BUFFERS.by_name.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < count:
        buffer = _BUFFERS.by_name[name] = np.empty(count, dtype)
    return buffer[:count].reshape(shape)
