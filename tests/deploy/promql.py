"""What PromQL queries (alert rules, dashboard panels) rely on, held against the metrics
the programs serve: every metric exists, every label of a matcher or of a
by/without/on/ignoring/group_x clause is a label of its series, and an = matcher's value
is one a series has. The queries are read with promql-parser (the Rust parser that
Prometheus-compatible databases use; tests/requirements.txt)."""

from __future__ import annotations

import re
from typing import Any

from endpoints import Served

try:
    import promql_parser  # type: ignore
except ImportError:  # the checks that need it report a skip
    promql_parser = None

# Metrics (and their labels) of the Kafka exporter the dead-letter and group-lag alerts
# and the dashboard rely on (github.com/danielqsj/kafka_exporter).
KAFKA_EXPORTER_METRICS = {"kafka_topic_partition_current_offset": {"topic", "partition"},
                          "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"}}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


class PromqlUse:
    """The selectors (metric, [(label, op, value)]) and groupings (clause, labels, metrics
    in its scope) of one expression; ValueError when it does not parse."""

    def __init__(self, expr: str) -> None:
        tree = promql_parser.parse(expr)
        self.selectors: list[tuple[str, list[tuple[str, str, str]]]] = []
        self.groupings: list[tuple[str, list[str], set[str]]] = []
        promql_parser.walk(tree, pre_visit=self._visit)

    @staticmethod
    def _metrics_under(node: Any) -> set[str]:
        names: set[str] = set()

        def visit(n: Any) -> None:
            if isinstance(n, promql_parser.VectorSelector) and n.name:
                names.add(n.name)
        promql_parser.walk(node, pre_visit=visit)
        return names

    def _visit(self, n: Any) -> None:
        if isinstance(n, promql_parser.VectorSelector) and n.name:
            self.selectors.append((n.name, [(m.name, str(m.op).rsplit(".", 1)[-1], m.value)
                                            for m in n.matchers.matchers if m.name != "__name__"]))
        elif isinstance(n, promql_parser.AggregateExpr) and n.modifier is not None:
            kind = "by" if "By" in str(n.modifier.type) else "without"
            self.groupings.append((kind, list(n.modifier.labels), self._metrics_under(n.expr)))
        elif isinstance(n, promql_parser.BinaryExpr) and n.modifier is not None:
            scope = self._metrics_under(n.lhs) | self._metrics_under(n.rhs)
            if n.modifier.matching is not None:
                kind = "on" if "Include" in str(n.modifier.matching.type) else "ignoring"
                self.groupings.append((kind, list(n.modifier.matching.labels), scope))
            group = list(getattr(n.modifier, "group_labels", None) or [])
            if group:
                self.groupings.append(("group_left/right", group, scope))


def series_labels(served: Served, metric: str) -> set[str] | None:
    """Labels a metric's series have once scraped (None: the metric is unknown)."""
    if metric in served:
        return set().union(*(s.keys() for s in served[metric])) | TARGET_LABELS
    if metric in KAFKA_EXPORTER_METRICS:
        return KAFKA_EXPORTER_METRICS[metric] | TARGET_LABELS
    return set(TARGET_LABELS) if metric == "up" else None


def check_queries(queries: list[tuple[str, str]], served: Served, served_from: set[str]) -> tuple[list[str], set[str]]:
    """(problems, metrics not verifiable with this build) of (where, PromQL) pairs."""
    problems: list[str] = []
    unverified: set[str] = set()
    for where, expr in queries:
        try:
            use = PromqlUse(expr)
        except ValueError as e:
            problems.append(f"{where}: PromQL does not parse: {e}")
            continue
        labels_of: dict[str, set[str]] = {}
        for metric, matchers in use.selectors:
            labels = series_labels(served, metric)
            prog = f"mailhook-{metric.split('_')[1]}" if metric.startswith("mailhook_") else ""
            if labels is None and prog and prog not in served_from:
                unverified.add(metric)
                continue
            if labels is None:
                family = re.sub(r"_(bucket|sum|count)$", "", metric)
                problems.append(f"{where}: {metric} is not served by {prog} (family {family})" if prog
                                else f"{where}: unknown metric {metric}")
                continue
            labels_of[metric] = labels
            for label, op, value in matchers:
                if label not in labels:
                    problems.append(f"{where}: {metric} has no label {label} (has {', '.join(sorted(labels))})")
                elif op == "Equal" and metric in served and label not in TARGET_LABELS \
                        and not any(s.get(label) == value for s in served[metric]):
                    problems.append(f"{where}: no {metric} series has {label}=\"{value}\"")
        for kind, labels, scope in use.groupings:
            known = [labels_of[m] for m in scope if m in labels_of]
            if len(known) != len(scope):
                continue  # a metric of the scope is reported (or unverifiable) above
            problems += [f"{where}: {kind} ({label}): no label {label} on {', '.join(sorted(scope))}"
                         for label in labels if not any(label in ls for ls in known)]
    return problems, unverified
