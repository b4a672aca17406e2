"""``highlightzoo list-models [PATTERN]``: the registered models and their cards."""

from __future__ import annotations

import argparse
import json
import textwrap

from highlightzoo.models.registry import ModelCard, get_model_card, list_models

COLUMNS = ("name", "granularity", "history", "cap", "loss", "table", "paper mAP", "summary")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``list-models``."""
    p = subparsers.add_parser(
        "list-models",
        help="list the registered models with their cards",
        description="List registered models (built-in and plugins) with their model cards.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'prnet*'")
    p.add_argument("--json", action="store_true", help="print the full cards as JSON")
    p.set_defaults(func=run_list_models)


def card_row(card: ModelCard) -> tuple[str, ...]:
    """One table row of a card (the summary cut to one short line)."""
    return (
        card.name,
        card.granularity,
        "yes" if card.uses_history else "no",
        "all" if card.history_cap is None else str(card.history_cap),
        card.default_loss,
        card.table or "-",
        "-" if card.paper_map is None else f"{card.paper_map:.2f}",
        textwrap.shorten(card.summary, width=60, placeholder="..."),
    )


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns under a header."""
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [COLUMNS, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_list_models(args: argparse.Namespace) -> int:
    cards = [get_model_card(name) for name in list_models(args.pattern)]
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2))
    elif not cards:
        print(f"no registered model matches {args.pattern!r}")
    else:
        print(format_table([card_row(c) for c in cards]))
    return 0
