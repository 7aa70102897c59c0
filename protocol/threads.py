"""One way to run a block with a given number of torch CPU threads and restore the caller's."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def torch_threads(count: int):
    """torch uses `count` CPU threads inside the block (0: leave the current setting), then the
    caller's setting comes back. Tiny models gain nothing from intra-op threads, and on a shared
    CPU their spin-waiting costs several times the work (measured 4-5x on the 2-core machine);
    grid workers divide the cores rather than each taking all of them."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
