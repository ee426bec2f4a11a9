"""Regenerate `modelmesh/_data/model_catalogue.json` from pydantic's genai-prices (MIT).

Run in a scratch environment that has the package (never a runtime dependency):

    python -m venv /tmp/gp && /tmp/gp/bin/pip install genai-prices==0.2.3
    /tmp/gp/bin/python scripts/update_catalogue.py [YYYY-MM-DD]

It keeps the providers ModelMesh has connectors for, each model's match rule (genai-prices'
own clauses, compacted), its base prices in USD per million tokens (and per request) in force
on the snapshot date, and its context window. Prices that vary by prompt size keep their base
tier; time-of-day discounts are left out. The header records source, version, licence and date.
"""
from __future__ import annotations

import datetime
import json
import sys
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

from genai_prices import types as T
from genai_prices.data import providers

# genai-prices provider id -> kept (ModelMesh connectors map to these in modelmesh/_catalogue.py)
KEEP = ("openai", "azure", "anthropic", "google", "groq", "mistral", "deepseek", "together", "openrouter",
        "x-ai", "perplexity", "fireworks", "cerebras", "elevenlabs")
OUT = Path(__file__).resolve().parent.parent / "modelmesh" / "_data" / "model_catalogue.json"


def clause(c: object) -> list:
    if isinstance(c, T.ClauseOr):
        return ["or", [clause(x) for x in c.or_]]
    if isinstance(c, T.ClauseAnd):
        return ["and", [clause(x) for x in c.and_]]
    for cls, key, attr in ((T.ClauseEquals, "eq", "equals"), (T.ClauseStartsWith, "starts", "starts_with"),
                           (T.ClauseEndsWith, "ends", "ends_with"), (T.ClauseContains, "contains", "contains"),
                           (T.ClauseRegex, "regex", "regex")):
        if isinstance(c, cls):
            return [key, getattr(c, attr)]
    raise TypeError(f"unknown clause {c!r}")


def number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, T.TieredPrices):
        value = value.base
    assert isinstance(value, Decimal), value
    return float(value)


def current(prices: object, day: datetime.date) -> T.ModelPrice:
    if isinstance(prices, T.ModelPrice):
        return prices
    chosen = None
    for conditional in prices:  # in order: the last one whose start date has come wins
        constraint = conditional.constraint
        if constraint is None or (isinstance(constraint, T.StartDateConstraint) and constraint.start_date <= day):
            chosen = conditional.prices
    assert chosen is not None
    return chosen


def main() -> None:
    day = datetime.date.fromisoformat(sys.argv[1]) if len(sys.argv) > 1 else datetime.date.today()
    out: dict[str, list] = {}
    for provider in providers:
        if provider.id not in KEEP:
            continue
        rows = []
        for m in provider.models:
            if m.deprecated is True or (isinstance(m.deprecated, datetime.date) and m.deprecated <= day):
                continue  # retired: a provider no longer serves it
            p = current(m.prices, day)
            row = [m.id, clause(m.match), number(p.input_mtok) or 0.0, number(p.output_mtok) or 0.0,
                   (number(p.requests_kcount) or 0.0) / 1000.0, m.context_window]
            rows.append(row)
        out[provider.id] = rows
    data = {
        "source": "genai-prices (https://github.com/pydantic/genai-prices), Python package data",
        "version": version("genai-prices"),
        "license": "MIT, Copyright (c) Pydantic Services Inc. 2025 to present",
        "date": day.isoformat(),
        "columns": ["id", "match", "input_per_1m", "output_per_1m", "per_request", "context_window"],
        "providers": out,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    print(f"{OUT}: {sum(len(v) for v in out.values())} models, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
