"""Writing the results: Markdown tables, JSON, and small hand-made SVG bar charts."""

from __future__ import annotations

import json
from dataclasses import asdict
from html import escape
from pathlib import Path

from benchmarks.common import Section


def svg_bars(title: str, values: dict[str, float], unit: str) -> str:
    """A horizontal bar chart as SVG text: one bar per label, the value written beside it."""
    width, label_w, bar_w, row_h = 760, 330, 330, 26
    height = 40 + row_h * len(values)
    top = max(values.values()) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(values.items()):
        y = 34 + i * row_h
        length = max(1, round(bar_w * value / top))
        parts += [
            f'<text x="10" y="{y + 14}">{escape(label)}</text>',
            f'<rect x="{label_w}" y="{y}" width="{length}" height="18" fill="#4878a8"/>',
            f'<text x="{label_w + length + 6}" y="{y + 14}">{value:g} {escape(unit)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def markdown(sections: list[Section], machine: dict[str, str], smoke: bool) -> str:
    lines = ["## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    if smoke:
        lines += ["", "**Smoke run: a few iterations, the numbers mean nothing.**"]
    for section in sections:
        lines += ["", f"### {section.title}", ""]
        for table in section.tables:
            lines += [f"**{table.title}**", "", *_table(table.columns, table.rows), ""]
        lines += [f"- {note}" for note in section.notes]
        lines += [f"\n![{name}](results/{name})" for name in section.plots]
    return "\n".join(lines).rstrip() + "\n"


def _table(columns: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def write(out: Path, sections: list[Section], machine: dict[str, str], smoke: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(markdown(sections, machine, smoke))
    data = {
        "machine": machine,
        "smoke": smoke,
        "sections": {
            s.name: {k: v for k, v in asdict(s).items() if k != "plots"} for s in sections
        },
    }
    (out / "latest.json").write_text(json.dumps(data, indent=2, default=str))
    for section in sections:
        for name, svg in section.plots.items():
            (out / name).write_text(svg)
    return out / "latest.md"
