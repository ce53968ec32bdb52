"""A process and its descendants, from procfs (servers fork workers: nginx, mariadbd helpers)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants, parents before children."""
    if not (PROC / str(pid)).exists():
        return []
    tree, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        if current in tree:
            continue
        tree.append(current)
        queue += _children(current)
    return tree
