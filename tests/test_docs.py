"""The README's generated parts (code layout, design-space table) match the code."""

import pytest

from pipeline import docs
from pipeline.models import registry
from tests.conftest import REPO


def test_readme_is_what_the_code_generates():
    readme = (REPO / "README.md").read_text()
    assert docs.render(readme) == readme, "run `python -m pipeline docs` and commit README.md"
    assert registry.design_space_markdown() in readme and "`pipeline/models/families/tcn.py`" in readme


def test_a_readme_without_the_blocks_is_refused():
    with pytest.raises(ValueError, match="no <!-- generated:layout -->"):
        docs.render("# nothing generated here\n")
