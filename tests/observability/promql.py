"""Just enough PromQL reading to check dashboards: which metrics, and which of their labels, an
expression asks for."""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)")
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Every metric the expression reads, with the label names it filters or groups on (grouping
    labels are attributed to every metric of the expression)."""
    lv = _LABEL_VALUES.fullmatch(expr.strip())
    if lv:
        return [(lv.group(1), {lv.group(2)})]
    e = _STRING.sub('""', expr)
    grouping: set[str] = set()
    for _, labels in _GROUPING.findall(e):
        grouping |= {x.strip() for x in labels.split(",") if x.strip()}
    e = _GROUPING.sub(" ", e)
    e = _RANGE.sub(" ", e)
    out: list[tuple[str, set[str]]] = []
    for name, matchers in _SELECTOR.findall(e):
        out.append((name, set(_MATCHER.findall(matchers))))
    e = _SELECTOR.sub(" ", e)
    for m in _IDENT.finditer(e):
        rest = e[m.end() :].lstrip()
        if rest.startswith("(") or m.group(0) in KEYWORDS:
            continue  # a function or an operator
        out.append((m.group(0), set()))
    return [(name, labels | grouping) for name, labels in out]


def dashboard_queries(board: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """(panel title, expression) of every target and templating query of a Grafana dashboard."""
    out = []
    for panel in board.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                if target.get("expr"):
                    out.append((inner.get("title", ""), target["expr"]))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            out.append((f"variable {var['name']}", q["query"] if isinstance(q, dict) else q))
    return out
