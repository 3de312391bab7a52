"""Progress bars on long work (tqdm, imported when a bar is made): one look everywhere, off on request."""

from __future__ import annotations

from typing import Any


def progress(
    iterable=None, total: int | None = None, desc: str = "", enabled: bool = True, initial: int = 0, **kw: Any
):
    """A tqdm bar over ``iterable`` or ``total`` steps; ``enabled=False`` draws nothing (quiet runs, workers)."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=not enabled,
        initial=initial,
        dynamic_ncols=True,
        mininterval=1.0,
        **kw,
    )
