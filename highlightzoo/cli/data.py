"""CLI command group (placeholder)."""


def register(subparsers) -> None:
    """Add this group's subcommands (none yet)."""
