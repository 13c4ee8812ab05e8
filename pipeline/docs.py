"""The README's generated parts: the code layout (each module's docstring) and the design-space
table (the family registry). `python -m pipeline docs` rewrites them in place; a test checks
that the README holds exactly what this module generates, so neither can drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parent


def _summary(path: Path) -> str:
    """A module's docstring up to its first full stop (one line)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


def layout_markdown() -> str:
    """One line per module of the package, folders first, in the order a reader meets them."""
    lines = []
    for path in sorted(PACKAGE.rglob("*.py"), key=lambda p: (len(p.relative_to(PACKAGE).parts), str(p))):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        if path.name == "__init__.py":
            relative = relative.removesuffix("__init__.py")
        summary = _summary(path)
        if summary:
            lines.append(f"- `{relative}`: {summary}")
    return "\n".join(lines) + "\n"


def design_space_markdown() -> str:
    from pipeline.models.registry import design_space_markdown

    return design_space_markdown()


SECTIONS = {"layout": layout_markdown, "design-space": design_space_markdown}


def render(readme: str) -> str:
    """The README with every generated section replaced by what this module generates now."""
    for name, generate in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README has no <!-- generated:{name} --> ... <!-- /generated:{name} --> block")
        readme = pattern.sub(lambda m: m.group(1) + generate() + m.group(2), readme)
    return readme


def main(readme: Path = PACKAGE.parent / "README.md") -> int:
    updated = render(readme.read_text())
    readme.write_text(updated)
    print(f"docs: {readme} regenerated ({', '.join(SECTIONS)})")
    return 0
