"""Rows of numbers by label values: the counters and histograms of the metrics, kept as
plain lists that one thread at a time changes (see :mod:`.family`)."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

Key = tuple[str, ...]  # label values


class Rows:
    """Rows of numbers by label values, changed only while the family folds (one
    thread at a time, under its lock)."""

    def __init__(self, name: str, doc: str, labels: str, width: int) -> None:
        self.name, self.doc, self.labels = f"durably_{name}", doc, labels.split()
        self._width = width
        self.rows: dict[Key, list[float]] = {}

    def row(self, key: Key) -> list[float]:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0.0] * self._width
        return row

    def merged(self) -> list[tuple[Key, list[float]]]:
        return sorted((key, list(row)) for key, row in self.rows.items())


class Counts(Rows):
    """A counter per label values."""

    def __init__(self, name: str, doc: str, labels: str) -> None:
        super().__init__(name, doc, labels, 1)

    def inc(self, key: Key, by: float = 1.0) -> None:
        self.row(key)[0] += by

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, (value,) in self.merged():
            family.add_metric(list(key), value)
        return family


class Histograms(Rows):
    """A histogram per label values: a count per bucket (and one past the last), the sum."""

    def __init__(self, name: str, doc: str, labels: str, buckets: Iterable[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        super().__init__(name, doc, labels, len(self.bounds) + 2)

    def observe(self, key: Key, value: float) -> None:
        row = self.row(key)
        row[bisect.bisect_left(self.bounds, value)] += 1  # the first bound >= value
        row[-1] += value

    def observe_all(self, key: Key, values: list[float]) -> None:
        """:meth:`observe` each of ``values`` under ``key``, in bulk: sorted (in place),
        a bucket's count is how many of them its bound passes."""
        row = self.row(key)
        values.sort()
        below = 0
        for bucket, bound in enumerate(self.bounds):
            up_to = bisect.bisect_right(values, bound, below)
            row[bucket] += up_to - below
            below = up_to
        row[len(self.bounds)] += len(values) - below
        row[-1] += sum(values)

    def observe_each(self, keys: list[Key], values: list[float]) -> Counter[Key]:
        """:meth:`observe` each value under the key at its index, counting in bulk;
        returns how many values each key got."""
        buckets = map(bisect.bisect_left, itertools.repeat(self.bounds), values)
        counts: Counter[Key] = Counter()
        for (key, bucket), count in Counter(zip(keys, buckets, strict=True)).items():
            self.row(key)[bucket] += count
            counts[key] += count
        sums = dict.fromkeys(counts, 0.0)
        for key, value in zip(keys, values, strict=True):
            sums[key] += value
        for key, total in sums.items():
            self.row(key)[-1] += total
        return counts

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for key, row in self.merged():
            cumulative = list(itertools.accumulate(row[:-1]))
            buckets = [(repr(b), c) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric(list(key), buckets, row[-1])
        return family
