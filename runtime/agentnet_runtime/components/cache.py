"""A cache bounded in bytes (the guides' CACHE_SIZE_MB), least recently used entries evicted first.

Sizes are what the caller says an entry costs (crdt-service: the length of its JSON, which is
nearly all of its memory), so measuring is free; an entry larger than the whole bound is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable


class ByteLRU:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0  # sum of the sizes of the entries held
        self.hits = self.misses = self.evictions = 0
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep `value` at a cost of `size` bytes, evicting the least recently used entries to make room."""
        old = self._data.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes:
            _, (_, evicted) = self._data.popitem(last=False)
            self.bytes -= evicted
            self.evictions += 1
        self._data[key] = (value, size)
        self.bytes += size

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self):
        """Keys, least recently used first."""
        return iter(self._data)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
