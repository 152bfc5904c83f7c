"""A small metrics registry rendered in the Prometheus text exposition format (version 0.0.4).

Counters, gauges (set directly or computed at scrape time) and histograms, each with optional
labels. Names are prefixed ``l2tp_broker_``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable

PREFIX = "l2tp_broker_"
LabelValues = tuple[str, ...]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name = PREFIX + name
        self.help = help_text
        self.label_names = labels

    def samples(self) -> Iterable[str]:
        return ()

    def render(self) -> str:
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self.samples())


#: Label value that collects the series beyond a counter's ``max_series``.
OTHER = "_other"


class Counter(Metric):
    """A counter; with ``max_series``, label sets beyond that many (e.g. LNS addresses that
    RADIUS named) are added up under ``_other`` so a peer cannot grow the scrape forever."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        max_series: int | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[LabelValues, float] = {}
        self.max_series = max_series

    def inc(self, *labels: str, by: float = 1.0) -> None:
        if (
            self.max_series is not None
            and labels not in self.values
            and len(self.values) >= self.max_series
        ):
            labels = (OTHER,) * len(labels)
        self.values[labels] = self.values.get(labels, 0.0) + by

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def samples(self) -> Iterable[str]:
        if not self.label_names and not self.values:
            yield f"{self.name} 0"
        for lv, v in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, lv)} {_fmt(v)}"


class Gauge(Metric):
    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        collect: Callable[[], dict[LabelValues, float]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[LabelValues, float] = {}
        self.collect = collect

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def samples(self) -> Iterable[str]:
        values = self.collect() if self.collect is not None else self.values
        if not self.label_names and not values:
            yield f"{self.name} 0"
        for lv, v in sorted(values.items()):
            yield f"{self.name}{_labels(self.label_names, lv)} {_fmt(v)}"


class Histogram(Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self.data: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        counts, total = self.data.setdefault(labels, ([0] * (len(self.buckets) + 1), [0.0]))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        total[0] += value

    def samples(self) -> Iterable[str]:
        items = sorted(self.data.items()) or (
            [((), ([0] * (len(self.buckets) + 1), [0.0]))] if not self.label_names else []
        )
        for lv, (counts, total) in items:
            running = 0
            for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
                running += c
                le = f'le="{_fmt(bound)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, lv, le)} {running}"
            yield f"{self.name}_sum{_labels(self.label_names, lv)} {_fmt(total[0])}"
            yield f"{self.name}_count{_labels(self.label_names, lv)} {running}"


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Metric:
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        return metric

    def counter(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        max_series: int | None = None,
    ) -> Counter:
        m = self._add(Counter(name, help_text, labels, max_series))
        assert isinstance(m, Counter)
        return m

    def gauge(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        collect: Callable[[], dict[LabelValues, float]] | None = None,
    ) -> Gauge:
        m = self._add(Gauge(name, help_text, labels, collect))
        assert isinstance(m, Gauge)
        return m

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> Histogram:
        m = self._add(Histogram(name, help_text, labels, buckets))
        assert isinstance(m, Histogram)
        return m

    def render(self) -> str:
        return "".join(m.render() for m in self.metrics.values())
