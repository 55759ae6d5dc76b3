"""Reading a Prometheus text exposition back: samples by name, and families by name."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    families: set[str] = field(default_factory=set)
    family_types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(
            v for lab, v in self.samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
        )

    def label_names(self, name: str) -> set[str]:
        out: set[str] = set()
        for lab, _ in self.samples.get(name, []):
            out |= set(lab)
        return out


def parse(text: str) -> Scrape:
    s = Scrape()
    for family in text_string_to_metric_families(text):
        s.families.add(family.name)
        s.family_types[family.name] = family.type
        for sample in family.samples:
            s.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return s


def scrape_registry(registry: object) -> Scrape:
    return parse(generate_latest(registry.collector_registry).decode())  # type: ignore[attr-defined]


def scrape_url(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as r:
        return parse(r.read().decode())
