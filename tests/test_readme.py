"""The README's library quick start runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs(capsys):
    block = re.search(r"## Library quick start\s+```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its quick-start block"
    exec(compile(block.group(1), "README-quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "prnet" in out and out.count("Segment(") == 5


def test_the_package_version_is_the_one_pyproject_declares():
    """``highlightzoo --version``, ``__version__`` and the provenance of every run read the
    package's constant; pip and the changelog read pyproject's. They must not drift apart."""
    import highlightzoo

    pyproject = (README.parent / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert declared and declared.group(1) == highlightzoo.__version__
