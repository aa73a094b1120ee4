"""The components' caches and the metrics every cache exports.

- `Lookups`: hits and misses of one cache, exported as agentnet_cache_hits_total and
  agentnet_cache_misses_total{app, cache}: the names the chart's AgentnetLowCacheHitRate alert
  and its Grafana panel read (crdt-service's merge cache, egraph-service's memo). The hit rate is
  their ratio over a window (PromQL), so no process exports a ratio of its own.
- `ByteLRU`: a cache bounded in bytes (the guides' CACHE_SIZE_MB), least recently used entries
  evicted first. Sizes are what the caller says an entry costs (crdt-service: the length of its
  JSON, which is nearly all of its memory), so measuring is free; an entry larger than the whole
  bound is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable

from prometheus_client import Counter

HITS = Counter("agentnet_cache_hits", "Cache lookups answered from the cache, by app and cache", ["app", "cache"])
MISSES = Counter("agentnet_cache_misses", "Cache lookups the cache could not answer, by app and cache", ["app", "cache"])


class Lookups:
    """The hit and miss counters of one cache (`app`: the component; `cache`: which of its caches)."""

    def __init__(self, app: str, cache: str):
        # Children looked up once: labels() costs as much as a cache hit.
        self.hit, self.miss = HITS.labels(app, cache).inc, MISSES.labels(app, cache).inc


class ByteLRU:
    def __init__(self, max_bytes: int, lookups: Lookups | None = None):
        self.max_bytes = max_bytes
        self.lookups = lookups  # exported counters, if any
        self.bytes = 0  # sum of the sizes of the entries held
        self.hits = self.misses = self.evictions = 0
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            if self.lookups is not None:
                self.lookups.miss()
            return None
        self.hits += 1
        if self.lookups is not None:
            self.lookups.hit()
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
