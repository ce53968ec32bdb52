"""matrix.html: the matrix as one page to open in a browser.

One self-contained file, to be opened from disk or kept as a CI artifact: the
CSS and the script are inline, and a Content-Security-Policy forbids every
fetch, so the page shows the same thing offline and cannot leak the report
anywhere.  The table is built here, in Python, so the page reads even with
scripts off; the script only opens a cell's details (from the report's JSON,
embedded in a ``<script type="application/json">`` block) and filters rows.
Text from the report is escaped here (html.escape) and set with textContent
there, never parsed as markup: a test name or a kernel log can hold anything.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from .capabilities import by_name, column_title
from .compare import ABSENT, CellChange, changes
from .layout import LOOKS, PREDICTION, css, groups, prediction_mark, prediction_text, short_name
from .report import CellVerdict, KernelRow, Report

TITLE = "libtrace kernel matrix"
#: No fetch of any kind; inline style and script only (the page is one file).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
)
#: The columns before the capabilities: heading, and the row's text for each.
ROW_FACTS = ("series", "version", "boot s", "variant", "prediction")


def page(report: Report, previous: Report | None = None, previous_label: str = "") -> str:
    """The whole page; ``previous``: the report whose changed cells it lists
    (``previous_label`` names it, e.g. the path it came from)."""
    diff = changes(previous, report) if previous is not None else None
    changed = {(c.kernel, c.capability) for c in diff or ()}
    columns = report.columns()
    index = {row.name: i for i, row in enumerate(report.kernels)}
    body = [
        f"<h1>{TITLE}</h1>",
        _summary(report),
        _legend(),
        _filters(report),
        *([_changes(diff, previous_label, index)] if diff is not None else []),
        '<table id="matrix"><thead><tr><th scope="col">kernel</th>',
        *(f'<th scope="col">{fact}</th>' for fact in ROW_FACTS),
        *(
            f'<th scope="col" class="capability" title="{escape(_description(name))}">'
            f"{escape(column_title(name))}</th>"
            for name in columns
        ),
        "</tr></thead>",
    ]
    for title, rows in groups(report):
        kind = "booted" if rows[0].available else "predicted"
        body.append(
            f'<tbody class="group {kind}"><tr class="group-head"><th colspan="'
            f'{1 + len(ROW_FACTS) + len(columns)}">{escape(title)}: {len(rows)}</th></tr>'
        )
        for before, row in zip([None, *rows], rows, strict=False):
            first = before is not None and before.series != row.series  # a rule between series
            body.append(_row(row, index[row.name], columns, changed, first))
        body.append("</tbody>")
    body += [
        "</table>",
        _DETAILS,
        '<script type="application/json" id="matrix-data">'
        + _script_json(_data(report, columns, diff))
        + "</script>",
        f"<script>{_SCRIPT}</script>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty icon: otherwise the browser asks the disk for favicon.ico.
        f'<link rel="icon" href="data:,"><title>{TITLE}</title>'
        f"<style>{_style()}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _description(name: str) -> str:
    known = by_name().get(name)
    return known.description if known is not None else name


def _summary(report: Report) -> str:
    booted = sum(row.available for row in report.kernels)
    counts = [
        f"{sum(c.verdict is verdict for row in report.kernels for c in row.cells.values())} "
        f"{verdict}"
        for verdict in CellVerdict
    ]
    return (
        f'<p class="summary">{booted} kernels booted, {len(report.kernels) - booted} predicted '
        f"only. Cells: {escape(', '.join(counts))}. Click a cell for its details.</p>"
    )


def _badge(verdict: CellVerdict | None) -> str:
    if verdict is None:
        return f'<span class="badge absent">{ABSENT}</span>'
    look = LOOKS[verdict]
    return f'<span class="badge v-{_slug(verdict)}">{look.symbol} {escape(str(verdict))}</span>'


def _slug(verdict: CellVerdict) -> str:
    """A CSS class name for the verdict (``n/a`` has a slash)."""
    return verdict.name.lower()


def _legend() -> str:
    items = [
        f"<li>{_badge(verdict)} {escape(look.meaning)}</li>" for verdict, look in LOOKS.items()
    ]
    items += [
        '<li><span class="badge hatched">○ n/a</span> a kernel not booted here: its row is '
        "the static prediction only</li>",
        '<li><span class="mark">loads</span> the prediction (no boot); on a booted kernel, '
        '<span class="mark">as predicted</span> or <span class="mark disagree">NOT as '
        "predicted</span></li>",
        '<li><span class="badge changed-sample">Δ</span> changed since the compared report</li>',
    ]
    return '<ul id="legend">' + "".join(items) + "</ul>"


def _filters(report: Report) -> str:
    series = dict.fromkeys(row.series for row in report.kernels)
    verdicts = [v for v in CellVerdict if any(
        c.verdict is v for row in report.kernels for c in row.cells.values())]  # fmt: skip

    def boxes(name: str, values: list[str], labels: list[str]) -> str:
        return "".join(
            f'<label><input type="checkbox" name="{name}" value="{escape(value)}" checked> '
            f"{label}</label>"
            for value, label in zip(values, labels, strict=True)
        )

    return (
        '<form id="filters"><fieldset><legend>Series</legend>'
        + boxes("series", list(series), [escape(s) for s in series])
        + "</fieldset><fieldset><legend>Verdict</legend>"
        + boxes("verdict", [str(v) for v in verdicts], [_badge(v) for v in verdicts])
        + '</fieldset><p id="shown" aria-live="polite"></p></form>'
    )


def _changes(diff: list[CellChange], label: str, index: dict[str, int]) -> str:
    since = f" since {escape(label)}" if label else ""
    if not diff:
        return f'<section id="changes"><h2>No cell changed{since}</h2></section>'
    lines = []
    for change in diff:
        kernel = escape(change.kernel)
        if change.kernel in index and change.new is not None:
            kernel = (
                f'<button type="button" class="goto" data-row="{index[change.kernel]}" '
                f'data-column="{escape(change.capability)}">{kernel}</button>'
            )
        lines.append(
            f"<tr><td>{kernel}</td><td>{escape(column_title(change.capability))}</td>"
            f"<td>{_badge(change.old)}</td><td>→ {_badge(change.new)}</td></tr>"
        )
    noun = "cell" if len(diff) == 1 else "cells"
    return (
        f'<section id="changes"><h2>{len(diff)} {noun} changed{since}</h2><table>'
        '<thead><tr><th scope="col">kernel</th><th scope="col">capability</th>'
        '<th scope="col">before</th><th scope="col">now</th></tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></section>"
    )


def _row(
    row: KernelRow, i: int, columns: list[str], changed: set[tuple[str, str]], new_series: bool
) -> str:
    kind = "booted" if row.available else "predicted"
    kind += " new-series" if new_series else ""
    tag = "" if row.available else ' <span class="tag">predicted only</span>'
    mark = prediction_mark(row)
    disagree = " disagree" if row.prediction_agrees() is False else ""
    facts = [
        escape(row.series),
        escape(row.version),
        f"{row.boot_s:.1f}" if row.boot_s is not None else "",
        escape(row.variant),
        f'<span class="mark{disagree}" title="{escape(prediction_text(row))}">{escape(mark)}'
        "</span>"
        if mark
        else "",
    ]
    cells = []
    for name in columns:
        cell = row.cells.get(name)
        if cell is None:
            cells.append("<td></td>")
            continue
        delta = (row.name, name) in changed
        cells.append(
            f'<td{" class=changed" if delta else ""}><button type="button" '
            f'class="cell v-{_slug(cell.verdict)}" data-row="{i}" data-column="{escape(name)}" '
            f'data-verdict="{escape(str(cell.verdict))}">{LOOKS[cell.verdict].symbol} '
            f"{escape(str(cell.verdict))}{' Δ' if delta else ''}</button></td>"
        )
    return (
        f'<tr class="kernel {kind}" data-series="{escape(row.series)}">'
        f'<th scope="row" title="{escape(row.name)}">{escape(short_name(row.name))}{tag}</th>'
        + "".join(f"<td>{fact}</td>" for fact in facts)
        + "".join(cells)
        + "</tr>"
    )


def _data(report: Report, columns: list[str], diff: list[CellChange] | None) -> dict[str, Any]:
    """What the script shows of a cell: the report, plus what Python knows better."""
    kernels = []
    for row in report.kernels:
        data = row.to_json()
        data.update(series=row.series, mark=prediction_mark(row),
                    prediction=prediction_text(row), agrees=row.prediction_agrees())  # fmt: skip
        kernels.append(data)
    return {
        "columns": {
            name: {"title": column_title(name), "description": _description(name)}
            for name in columns
        },
        "looks": {str(v): look.symbol for v, look in LOOKS.items()},
        "kernels": kernels,
        "changes": None
        if diff is None
        else {
            f"{c.kernel}\n{c.capability}": [str(c.old or ABSENT), str(c.new or ABSENT)]
            for c in diff
        },
    }


def _script_json(data: object) -> str:
    """JSON that cannot end its ``<script>`` early: ``<``, ``>`` and ``&`` only
    occur inside JSON strings, where their ``\\u`` escapes mean the same."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _style() -> str:
    verdicts = "".join(
        f".v-{_slug(v)}{{background:{css(look.colour)};color:{css(look.ink)}}}"
        for v, look in LOOKS.items()
    )
    return f":root{{--prediction:{css(PREDICTION)}}}" + _STYLE + verdicts


_STYLE = """
body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:1rem;color:#111;font-size:14px}
body.open{padding-bottom:52vh}
h1{font-size:1.4rem;margin:.2rem 0}
#legend{display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;padding:0;list-style:none;font-size:13px}
#filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-start;margin:.6rem 0}
#filters fieldset{border:1px solid #bbb;border-radius:4px;display:flex;flex-wrap:wrap;
 gap:.2rem .7rem}
#filters label{white-space:nowrap;cursor:pointer}
#shown{margin:.3rem 0;align-self:center}
table{border-collapse:collapse;font-size:13px}
th,td{padding:2px 4px;text-align:left;white-space:nowrap;border-bottom:1px solid #eee}
thead th{position:sticky;top:0;background:#fff;border-bottom:2px solid #333;z-index:1}
tr.group-head th{background:#eee;padding:5px 4px;font-weight:bold}
tr.new-series{border-top:2px solid #888}
button.cell,.badge{font:inherit;border:1px solid #0004;border-radius:3px;padding:1px 6px;
 min-width:5.2em;text-align:left;display:inline-block}
button.cell{cursor:pointer}
button.cell:focus-visible,button.cell.selected{outline:3px solid #000;outline-offset:1px}
td.changed button.cell{box-shadow:0 0 0 3px var(--prediction);font-weight:bold}
.changed-sample{box-shadow:0 0 0 3px var(--prediction);min-width:0}
tr.predicted th,tr.predicted td{font-style:italic;color:#444}
tr.predicted button.cell,.badge.hatched{
 background:repeating-linear-gradient(135deg,#fff 0 4px,#d0d0d0 4px 8px);color:#222;
 border-style:dashed}
.tag{font-style:normal;font-size:11px;border:1px dashed #555;border-radius:3px;padding:0 3px}
.mark{background:var(--prediction);color:#000;border-radius:3px;padding:1px 5px}
.mark.disagree{background:#d55e00;color:#fff;font-weight:bold}
.absent{background:#fff;color:#333;border-style:dotted}
.dim{opacity:.25}
#changes table{margin-bottom:.8rem}
button.goto{font:inherit;background:none;border:0;padding:0;color:#0052a3;
 text-decoration:underline;cursor:pointer}
#details{position:fixed;left:0;right:0;bottom:0;max-height:50vh;overflow:auto;background:#fff;
 border-top:3px solid #333;padding:.4rem 1rem 1rem;box-shadow:0 -2px 10px #0005;z-index:2}
#details h2{font-size:1.1rem;margin:.3rem 0}
#details dl{display:grid;grid-template-columns:max-content auto;gap:.15rem .8rem;margin:.3rem 0}
#details dt{font-weight:bold}
#details dd{margin:0;white-space:pre-wrap}
#details pre{white-space:pre-wrap;background:#f4f4f4;border:1px solid #ddd;padding:.4rem;
 max-height:14em;overflow:auto;margin:.2rem 0 .6rem;font-size:12px}
#details-close{float:right}
"""

_DETAILS = """<aside id="details" hidden tabindex="-1" aria-labelledby="details-title">
<button type="button" id="details-close">close (Esc)</button>
<h2 id="details-title"></h2><dl id="details-facts"></dl><div id="details-logs"></div>
</aside>"""

# Plain JavaScript, no library: a click opens the details, the checkboxes filter.
_SCRIPT = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("matrix-data").textContent);
  const panel = document.getElementById("details");
  let selected = null;

  function fact(list, term, value) {
    if (value === null || value === undefined || value === "") return;
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    list.append(dt, dd);
  }

  function block(holder, title, text, id) {
    if (!text) return;
    const heading = document.createElement("h3");
    const pre = document.createElement("pre");
    heading.textContent = title;
    pre.textContent = text;
    pre.id = id;
    holder.append(heading, pre);
  }

  function show(row, column, scroll) {
    const kernel = data.kernels[Number(row)];
    const cell = kernel.cells[column];
    const about = data.columns[column];
    document.getElementById("details-title").textContent =
      kernel.name + " \\u00b7 " + about.title;
    const facts = document.getElementById("details-facts");
    facts.replaceChildren();
    fact(facts, "verdict", data.looks[cell.verdict] + " " + cell.verdict);
    fact(facts, "detail", cell.detail);
    if (typeof cell.seconds === "number") fact(facts, "seconds", cell.seconds.toFixed(1));
    if (data.changes) {
      const change = data.changes[kernel.name + "\\n" + column];
      if (change) fact(facts, "changed", change[0] + " \\u2192 " + change[1]);
    }
    fact(facts, "column", about.description);
    fact(facts, "kernel", [kernel.version, kernel.source].filter(Boolean).join(", "));
    fact(facts, "booted", kernel.available
      ? "yes" + (typeof kernel.boot_s === "number" ? ", in " + kernel.boot_s.toFixed(1) + " s" : "")
      : "no: predicted only");
    fact(facts, "variant loaded", kernel.available ? (kernel.variant || "not recorded") : "");
    fact(facts, "prediction", kernel.prediction
      ? kernel.prediction + (kernel.agrees === null ? "" : kernel.agrees ? " (as predicted)"
                                                                       : " (NOT as predicted)")
      : "none");
    fact(facts, "note", kernel.note);
    const logs = document.getElementById("details-logs");
    logs.replaceChildren();
    block(logs, "verifier's message", cell.verifier, "details-verifier");
    block(logs, "test log (the end of the first failure)", cell.log, "details-log");
    block(logs, "guest console (last lines)", kernel.log_tail, "details-console");
    if (selected) selected.classList.remove("selected");
    selected = document.querySelector(
      'button.cell[data-row="' + row + '"][data-column="' + CSS.escape(column) + '"]');
    if (selected) selected.classList.add("selected");
    panel.hidden = false;
    document.body.classList.add("open");
    if (scroll && selected) {
      // From the list of changes: bring the cell into the upper half, above the details.
      selected.scrollIntoView({block: "start", inline: "center"});
      window.scrollBy(0, -window.innerHeight / 4);
    }
  }

  function hide() {
    panel.hidden = true;
    document.body.classList.remove("open");
    if (selected) selected.focus();
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.cell, button.goto");
    if (button) show(button.dataset.row, button.dataset.column, button.classList.contains("goto"));
  });
  document.getElementById("details-close").addEventListener("click", hide);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !panel.hidden) hide();
  });

  function checked(name) {
    return new Set(Array.from(
      document.querySelectorAll('#filters input[name="' + name + '"]:checked'),
      function (box) { return box.value; }));
  }

  function filter() {
    const series = checked("series");
    const verdicts = checked("verdict");
    let shown = 0;
    const rows = document.querySelectorAll("#matrix tr.kernel");
    rows.forEach(function (tr) {
      const cells = tr.querySelectorAll("button.cell");
      let any = false;
      cells.forEach(function (button) {
        const keep = verdicts.has(button.dataset.verdict);
        button.classList.toggle("dim", !keep);
        any = any || keep;
      });
      tr.hidden = !(series.has(tr.dataset.series) && any);
      if (!tr.hidden) shown += 1;
    });
    document.querySelectorAll("#matrix tbody.group").forEach(function (group) {
      group.hidden = !group.querySelector("tr.kernel:not([hidden])");
    });
    document.getElementById("shown").textContent =
      "showing " + shown + " of " + rows.length + " kernels";
  }

  document.getElementById("filters").addEventListener("change", filter);
  filter();
})();
"""
