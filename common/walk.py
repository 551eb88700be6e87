"""The walk's layout, defined once for every runner: blocks of orderings, and the game calls inside a block.

An estimator needs a fixed number of coalitions per ordering (its `rows_per_ordering`), ordering-major. A block
is a whole number of sampler groups (orderings.py). A game call holds whole orderings when they fit in
`batch_size` coalitions, else consecutive slices of one ordering. Blocks lie on a fixed grid of orderings from
0, so a resumed run, or a shard that starts on the grid, makes exactly the same game calls as a straight run:
checkpoints and Ray shards cut only at block ends.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    start: int    # first ordering of the block (global index)
    stop: int     # one past its last ordering
    calls: tuple  # (first row, end row) of each game call, rows counted from the block's first coalition


def block_size(rows_per_ordering: int, batch_size: int, group: int) -> int:
    """Orderings per block: as many whole groups as fit in one call, at least one group."""
    per_call = batch_size // rows_per_ordering
    return per_call - per_call % group if per_call >= group else group


def blocks(start: int, stop: int, rows_per_ordering: int, batch_size: int, group: int):
    """The blocks covering orderings [start, stop); `start` must lie on the grid (a multiple of
    `block_size`)."""
    size = block_size(rows_per_ordering, batch_size, group)
    if start % size:
        raise ValueError(f"ordering {start} is not on the walk's grid of {size}-ordering blocks")
    per_call = batch_size // rows_per_ordering
    rows = rows_per_ordering
    for first in range(start, stop, size):
        k = min(first + size, stop) - first
        if per_call >= 1:  # whole orderings in every call
            calls = tuple((a * rows, min(a + per_call, k) * rows) for a in range(0, k, per_call))
        else:  # each ordering in slices of at most batch_size coalitions
            calls = tuple((o * rows + a, o * rows + min(a + batch_size, rows))
                          for o in range(k) for a in range(0, rows, batch_size))
        yield Block(first, first + k, calls)


def shard_bounds(n_orderings: int, rows_per_ordering: int, batch_size: int, group: int, n_shards: int) -> list:
    """Contiguous shards of orderings, each starting on the grid, as (start, stop) pairs."""
    step = block_size(rows_per_ordering, batch_size, group)
    cuts = sorted({0, n_orderings} | {min(n_orderings, round(i * n_orderings / n_shards / step) * step)
                                      for i in range(n_shards)})
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
