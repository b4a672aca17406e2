"""What the README and docs/ name exists: every ``highlightzoo ...`` command parses, every
``highlightzoo.x.y`` name imports.

The docs are what users copy; a flag or a function renamed in the code but not in a doc fails
here (commands are parsed by the real argument parser, not run).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

from highlightzoo.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_commands(page: Path) -> list[tuple[int, str, bool]]:
    """``(line, command, whole)`` for every ``highlightzoo`` command of a page: in fenced blocks
    (``whole``: backslash continuations joined, comments dropped, each part of ``a && b``) and
    in inline code spans (often a part of a command, ``highlightzoo evaluate --protocol``);
    optional ``[...]`` parts are dropped."""
    found, in_block, pending, start = [], False, "", 0
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            found += [(number, span, False) for span in re.findall(r"`(highlightzoo [a-z][^`]*)`", line)]
            continue
        text = re.sub(r"\s+#.*$", "", line).rstrip()
        if not pending and "highlightzoo " not in text:
            continue
        start = start if pending else number
        pending += " " + text.rstrip("\\").strip()
        if not text.endswith("\\"):
            found += [(start, part.strip(), True) for part in re.split(r"&&|;", pending)
                      if part.strip().startswith("highlightzoo ")]
            pending = ""
    return [(n, re.sub(r"\[[^\]]*\]", "", cmd).strip(), whole) for n, cmd, whole in found]


CASES = [(page, *found) for page in PAGES for found in doc_commands(page)]
#: a plugin's model, registered by the page's own example (tests/test_new_detector.py runs it)
PLUGIN_MODELS = {"attentive_mlp"}


def _subcommand(parser: argparse.ArgumentParser, words: list[str]):
    """The parser of the longest subcommand path of ``words``, and the words after it."""
    while words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or words[0] not in subs[0].choices:
            break
        parser, words = subs[0].choices[words[0]], words[1:]
    return parser, words


def test_the_docs_have_commands_to_check():
    assert sum(whole for _, _, _, whole in CASES) >= 30
    assert {page.name for page, _, _, _ in CASES} >= {"README.md", "your-own-data.md", "training.md"}


@pytest.mark.parametrize("page, line, command, whole", CASES,
                         ids=[f"{p.name}:{n}" for p, n, _, _ in CASES])
def test_a_documented_command_parses(page, line, command, whole):
    """A command in a code block parses as it is; a command named in the prose names a real
    subcommand and only options it has."""
    argv = shlex.split(command)[1:]
    if set(argv) & PLUGIN_MODELS:
        pytest.skip("a plugin's model, registered by the page's example")
    if not whole:
        parser, rest = _subcommand(build_parser(), argv)
        assert parser.prog != "highlightzoo" or not rest or rest[0].startswith("-"), (
            f"{page.name}:{line}: `{command}` names no subcommand")
        options = {o for a in parser._actions for o in a.option_strings}
        unknown = [w.split("=")[0] for w in rest if w.startswith("--") and w.split("=")[0] not in options]
        assert not unknown, f"{page.name}:{line}: `{command}`: {parser.prog} has no {unknown}"
        return
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{page.name}:{line}: `{command}` does not parse (exit {exc.code}): "
                        f"{err.getvalue().strip().splitlines()[-1:]}")


def doc_names() -> list[tuple[str, str]]:
    """``(page, dotted name)`` of every backticked ``highlightzoo.x.y`` (a call's arguments cut)."""
    pattern = re.compile(r"`(highlightzoo(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`")
    return sorted({(page.name, m.group(1)) for page in PAGES
                   for m in pattern.finditer(page.read_text(encoding="utf-8"))})


NAMES = doc_names()


def test_the_docs_name_things_to_check():
    assert len(NAMES) >= 40


@pytest.mark.parametrize("page, name", NAMES, ids=[f"{p}:{n}" for p, n in NAMES])
def test_a_documented_name_imports(page, name):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"{page}: `{name}`: {obj!r} has no {attr!r}"
            obj = getattr(obj, attr)
        return
    pytest.fail(f"{page}: `{name}` is not importable")
