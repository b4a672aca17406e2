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

