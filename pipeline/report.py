"""The run report: one self-contained HTML page (pictures embedded) from the stages' outputs.

Sections, top to bottom: the goal and its verdict, the data, the chosen architecture, the
redesign history, the test metrics, the error analysis, and where the model went.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.objective import Objective

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 1.5rem 3rem;
       color: #1d1d1f; line-height: 1.45; }
header.verdict { margin: 1.5rem 0; padding: 1rem 1.5rem; border-radius: 8px; border-left: 8px solid; }
header.met { background: #e8f6ec; border-color: #1f883d; }
header.missed { background: #fdeceb; border-color: #cf222e; }
header h1 { margin: 0 0 .3rem; font-size: 1.6rem; }
nav a { margin-right: 1rem; }
section { margin-top: 2rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { display: inline-block; margin: .5rem 1rem 1rem 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { font-size: .85rem; color: #57606a; }
.note { color: #57606a; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }
"""


@dataclass
class Section:
    """One part of the page: an id for the contents links, a title, and HTML blocks."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)

    def add(self, *blocks: str) -> Section:
        self.blocks.extend(b for b in blocks if b)
        return self


def text(value) -> str:
    return html.escape(str(value))


def paragraph(value: str, css: str = "") -> str:
    return f'<p class="{css}">{text(value)}</p>' if css else f"<p>{text(value)}</p>"


def code(value: str) -> str:
    return f"<code>{text(value)}</code>"


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{text('-' if value is None else str(value).lower())}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, float):
        shown = "-" if math.isnan(value) else f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.1f}"
        return f'<td class="num">{shown}</td>'
    return f"<td>{text(value)}</td>"


def table(rows, columns: list[str] | None = None, limit: int | None = None) -> str:
    """An HTML table from a DataFrame or a list of dicts (numbers right-aligned, 4 decimals)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return paragraph("(none)", "note")
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]]
    shown = frame.head(limit) if limit else frame
    head = "".join(f"<th>{text(c)}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(_cell(_plain(v)) for v in row) + "</tr>" for row in shown.itertuples(index=False))
    more = paragraph(f"... {len(frame) - len(shown)} more rows in the CSV", "note") if len(shown) < len(frame) else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}'


def _plain(value):
    """NumPy scalars as Python ones, so cells format by kind."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def pairs(values: dict) -> str:
    """A two-column table of names and values."""
    return table([{"name": k, "value": v if isinstance(v, (int, float, bool)) or v is None else str(v)}
                  for k, v in values.items()])


def image(path: Path, caption: str) -> str:
    """A PNG embedded as a data URI (the page stays one file); nothing if the stage did not draw it."""
    path = Path(path)
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{text(caption)}">'
            f"<figcaption>{text(caption)}</figcaption></figure>")


def verdict_header(test: dict, source: str, task: str) -> str:
    met = test["goal_met"]
    sign = Objective(test["metric"]).comparison
    interval = test.get("interval_95") or {}
    detail = (f"margin {test['margin']:+.4f}; 95% bootstrap interval [{interval.get('low', float('nan')):.4f}, "
              f"{interval.get('high', float('nan')):.4f}] on {test['test_rows']} test rows: "
              f"{test.get('verdict_certainty', 'no interval')}")
    baselines = [e for e in test.get("leaderboard", []) if e["kind"] == "baseline"]
    beside = ""
    if baselines:
        objective = Objective(test["metric"])
        best = objective.best(baselines, value=lambda e: e["test"])
        standing = "ahead of" if objective.better_than(test["value"], best["test"]) else "not ahead of"
        beside = (f"<p>The network is {standing} the best plain baseline, {text(best['name'])}: test "
                  f"{text(test['metric'])} {best['test']:.4f}.</p>")
    return (f'<header class="verdict {"met" if met else "missed"}"><h1>Goal {"met" if met else "missed"}: '
            f"test {text(test['metric'])} {test['value']:.4f} (goal {text(sign)} {test['threshold']})</h1>"
            f"<p>{text(detail)}</p>{beside}<p class=\"note\">{text(source)} &middot; {text(task)}</p></header>")


def render(title: str, header: str, sections: list[Section], footer: str = "") -> str:
    """The whole page."""
    nav = " ".join(f'<a href="#{s.id}">{text(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.id}"><h2>{text(s.title)}</h2>\n' + "\n".join(s.blocks) + "</section>"
                     for s in sections)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{text(title)}</title><style>{STYLE}</style></head>\n<body>\n{header}\n<nav>{nav}</nav>\n"
            f"{body}\n<footer class=\"note\">{footer}</footer>\n</body></html>\n")
