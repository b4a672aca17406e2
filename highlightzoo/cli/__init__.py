"""The ``highlightzoo`` command line: one entry point, one module per command group.

Each command module defines ``register(subparsers)``, which adds its
subcommands and sets ``func`` on them; ``main`` only dispatches. Errors of
type :class:`~highlightzoo.errors.HighlightZooError` are printed as one line
(exit 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from highlightzoo import __version__
from highlightzoo.checks import INT64_LIMIT
from highlightzoo.errors import HighlightZooError, first_line

# Modules under highlightzoo.cli that contribute subcommands.
COMMAND_MODULES = ("data", "features", "models", "engine", "bench")


def whole_number(text: str) -> int:
    """argparse ``type`` of every int option: an int below 2**63 in size (``checks.INT64_LIMIT``;
    torch, NumPy and the process pool overflowed on larger ones, after work had started)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if abs(value) >= INT64_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is too large (the limit is 2**63)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="highlightzoo",
        description="Personalized video highlight detection: data, models, training, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"highlightzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"highlightzoo.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except HighlightZooError as err:
        print(f"highlightzoo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("highlightzoo: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        # the machine's limit, not a bug: one line that says what to shrink (exit 1, not 2)
        print(f"highlightzoo: error: out of memory ({first_line(err)[:200]}); ask for less: a smaller "
              "--batch-size, --eval-batch-size, --clip-len or model, or fewer --seeds",
              file=sys.stderr)
        return 1


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is running out of host or accelerator memory: Python's
    ``MemoryError``, ``torch.OutOfMemoryError`` (a ``RuntimeError``) or the CPU allocator's
    ``RuntimeError`` ("can't allocate memory"), which torch raises without a type of its own."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
