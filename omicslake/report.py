"""The run report's pages (`snakemake --report`): an ingest summary and two plots.

Per dataset: what this run did to it (new / replaced / unchanged / failed / not run, from the
lake's loads, the job outcomes and this run's probe reports), rows, files, bytes, job time,
upstream version and date, snapshot. The summary page reads the same at 5 datasets and at 5,000:
a line per source first, then the failures with their causes, then every dataset (failures
first); past `PER_DATASET_BARS` datasets the plot shows sources, not datasets.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path

from omicslake.errors import extra
from omicslake.progress import size
from omicslake.status import Dataset, Status, collect

PER_DATASET_BARS = 40  # more datasets than this: one bar per source (a bar per dataset is unreadable)
COLOURS = {  # what this run did to a dataset; "not probed": its source's probe failed, or it left the config
    "new": "#1b9e77",
    "replaced": "#7570b3",
    "unchanged": "#888888",
    "failed": "#d95f02",
    "not run": "#e6ab02",
    "not probed": "#bbbbbb",
}


def changes(status: Status, probe_reports: list[str], since: str) -> dict[str, str]:
    """{dataset: what the run that started at `since` did to it}: failed (its jobs have not
    succeeded since a failure), new or replaced (a load registered since), not run (upstream
    changed, but no job ran: the run stopped first), else unchanged (also a changed upstream
    whose bytes were the same: no new load)."""
    probed = {}
    for path in probe_reports:
        with open(path) as f:
            report = json.load(f)
        probed.update({f"{report['source']}.{name}": word for name, word in report["datasets"].items()})
    start = datetime.fromisoformat(since)
    after = lambda stamp: stamp is not None and datetime.fromisoformat(stamp) >= start  # noqa: E731
    found = {}
    for d in status.datasets:
        if d.state in ("failed", "unfinished"):
            found[d.dataset] = "failed"
        elif after(d.registered_at):
            found[d.dataset] = "new" if d.loads == 1 else "replaced"
        elif probed.get(d.dataset, "unchanged") != "unchanged" and not after(d.last_job_at):
            found[d.dataset] = "not run"
        elif d.dataset in probed:
            found[d.dataset] = "unchanged"
    return found


def write(
    config: dict, probe_reports: list[str], since: str, summary: str, datasets_plot: str, growth_plot: str
) -> Status:
    """Write the summary page and the two plots of the lake after the run that started at `since`."""
    status = collect(config, snapshots=1_000_000)
    change = changes(status, probe_reports, since)
    Path(summary).parent.mkdir(parents=True, exist_ok=True)
    Path(summary).write_text(summary_page(status, change))
    plot_datasets(status.datasets, change, datasets_plot)
    plot_growth(status, growth_plot)
    return status


def summary_page(status: Status, change: dict[str, str]) -> str:
    counts = {kind: sum(c == kind for c in change.values()) for kind in COLOURS}
    headline = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no dataset probed"
    latest = status.snapshots[0] if status.snapshots else None
    lake = f"snapshot {latest.snapshot_id}: {latest.rows:,} rows, {size(latest.bytes)}" if latest else "empty"
    header = ["source", "dataset", "this run", "rows", "files", "size", "job time", "upstream version"]
    header += ["upstream date", "snapshot", "cause"]
    failed_first = sorted(status.datasets, key=lambda d: change.get(d.dataset) != "failed")  # stable
    rows = "\n".join(dataset_row(d, change.get(d.dataset, "not probed")) for d in failed_first)
    failure = f'<p class="error">{html.escape(status.lake_error)}</p>' if status.lake_error else ""
    failures = [d for d in failed_first if change.get(d.dataset) == "failed"]
    failed_rows = "\n".join(
        f"<tr><td>{html.escape(d.dataset)}</td><td>{html.escape(d.failed_step or '')}</td>"
        f"<td>{html.escape(d.cause or '')}</td><td>{html.escape(d.log or '')}</td></tr>"
        for d in failures
    )
    failed_table = (
        f"""<h3>Failed ({len(failures)})</h3>
<table id="failures">
<thead><tr><th>dataset</th><th>step</th><th>cause</th><th>log</th></tr></thead>
<tbody>
{failed_rows}
</tbody></table>"""
        if failures
        else ""
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Omicslake ingest summary</title>
<style>
body {{ font-family: sans-serif; font-size: 14px; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
td.n {{ text-align: right; white-space: nowrap; }}
.change {{ color: white; border-radius: 3px; padding: 1px 6px; }}
.error {{ color: #d95f02; }}
</style></head>
<body>
<h2>Ingest summary</h2>
<p id="headline">This run: {headline}. Lake after it: {lake}.</p>{failure}
<h3>Sources</h3>
{source_table(status.datasets, change)}
{failed_table}
<h3>Datasets ({len(status.datasets)})</h3>
<table id="datasets">
<thead><tr>{"".join(f"<th>{h}</th>" for h in header)}</tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def per_source(datasets: list[Dataset], change: dict[str, str]) -> dict[str, dict]:
    """{source: {"datasets", each kind of change, "rows", "bytes"}} (rows and bytes of the loads in the lake)."""
    sources: dict[str, dict] = {}
    for d in datasets:
        counts = sources.setdefault(
            d.dataset.split(".", 1)[0], {"datasets": 0, **dict.fromkeys(COLOURS, 0), "rows": 0, "bytes": 0}
        )
        counts["datasets"] += 1
        counts[change.get(d.dataset, "not probed")] += 1
        counts["rows"] += d.rows or 0
        counts["bytes"] += d.bytes or 0
    return dict(sorted(sources.items()))


def source_table(datasets: list[Dataset], change: dict[str, str]) -> str:
    kinds = list(COLOURS)
    header = "".join(f"<th>{h}</th>" for h in ["source", "datasets", *kinds, "rows", "size"])
    rows = []
    for source, counts in per_source(datasets, change).items():
        cells = [f"<td>{html.escape(source)}</td>", f"<td class=n>{counts['datasets']:,}</td>"]
        cells += [f'<td class="n{" error" if k == "failed" and counts[k] else ""}">{counts[k]:,}</td>' for k in kinds]
        cells += [f"<td class=n>{counts['rows']:,}</td>", f"<td class=n>{size(counts['bytes'])}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows)
    return f'<table id="sources">\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def dataset_row(d: Dataset, change: str) -> str:
    source, name = d.dataset.split(".", 1)
    badge = f'<span class="change" style="background:{COLOURS.get(change, "#bbbbbb")}">{change}</span>'
    cells = [
        html.escape(source),
        html.escape(name),
        badge,
        f"{d.rows:,}" if d.rows is not None else "",
        d.files if d.files is not None else "",
        size(d.bytes) if d.bytes is not None else "",
        f"{d.seconds:.1f} s" if d.seconds else "",
        html.escape(d.upstream_version or ""),
        html.escape((d.upstream_date or "")[:19].replace("T", " ")),
        d.snapshot_id if d.snapshot_id is not None else "",
        html.escape(d.cause or ""),
    ]
    numeric = {3, 4, 5, 6, 8, 9}
    return "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(cells)) + "</tr>"


def scaled(values: list[int]) -> tuple[list[float], str]:
    """Byte counts in the unit that suits the largest."""
    unit = size(max(values, default=0)).split()[-1] if values else "B"
    factor = 1000 ** ["B", "kB", "MB", "GB", "TB"].index(unit)
    return [v / factor for v in values], unit


def plot_datasets(datasets: list[Dataset], change: dict[str, str], path: str) -> None:
    """Rows and bytes per dataset, coloured by what this run did to it (per source past
    `PER_DATASET_BARS` datasets)."""
    plt = pyplot()
    shown = [d for d in datasets if d.rows is not None or change.get(d.dataset) == "failed"] or datasets
    if len(shown) > PER_DATASET_BARS:
        return plot_sources(per_source(datasets, change), path)
    labels = [d.dataset for d in shown]
    colours = [COLOURS.get(change.get(d.dataset, ""), "#bbbbbb") for d in shown]
    figure, (rows, sizes) = plt.subplots(1, 2, figsize=(11, 1.2 + 0.35 * max(len(shown), 1)), sharey=True)
    rows.barh(labels, [d.rows or 0 for d in shown], color=colours)
    rows.set_xlabel("rows")
    values, unit = scaled([d.bytes or 0 for d in shown])
    sizes.barh(labels, values, color=colours)
    sizes.set_xlabel(f"{unit} (Parquet)")
    rows.invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    figure.legend(handles, COLOURS, loc="upper center", ncol=len(COLOURS), frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_sources(sources: dict[str, dict], path: str) -> None:
    """Datasets per source by what this run did to them, and the rows and bytes per source."""
    plt = pyplot()
    labels = list(sources)
    figure, (counts, rows, sizes) = plt.subplots(1, 3, figsize=(13, 1.6 + 0.45 * len(labels)), sharey=True)
    left = [0] * len(labels)
    for kind, colour in COLOURS.items():
        values = [sources[s][kind] for s in labels]
        counts.barh(labels, values, left=left, color=colour, label=kind)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, source in enumerate(labels):  # a few failures among thousands are too thin a bar to see
        if sources[source]["failed"]:
            counts.annotate(
                f" {sources[source]['failed']:,} failed", (left[y], y), va="center", color=COLOURS["failed"]
            )
    counts.set_xlim(0, max(left, default=0) * 1.3 or 1)  # room for those labels
    counts.set_xlabel("datasets")
    rows.barh(labels, [sources[s]["rows"] for s in labels], color="#555555")
    rows.set_xlabel("rows (in the lake)")
    values, unit = scaled([sources[s]["bytes"] for s in labels])
    sizes.barh(labels, values, color="#555555")
    sizes.set_xlabel(f"{unit} (Parquet)")
    counts.invert_yaxis()
    total = sum(sources[s]["datasets"] for s in labels)
    figure.suptitle(f"{total:,} datasets in {len(labels)} sources (the summary lists each)")
    figure.legend(*counts.get_legend_handles_labels(), loc="lower center", ncol=len(COLOURS), frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_growth(status: Status, path: str) -> None:
    """The lake's rows and bytes after each snapshot that registered a load, over time."""
    from datetime import datetime

    plt = pyplot()
    history = status.snapshots[::-1]
    times = [datetime.fromisoformat(s.time) for s in history]
    figure, (rows, sizes) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    marker = "o" if len(history) <= 200 else None  # thousands of loads: a line, not a smear of dots
    rows.step(times, [s.rows for s in history], where="post", marker=marker)
    rows.set_ylabel("rows")
    values, unit = scaled([s.bytes for s in history])
    sizes.step(times, values, where="post", marker=marker, color="#7570b3")
    sizes.set_ylabel(f"{unit} (Parquet)")
    rows.set_ylim(bottom=0)
    sizes.set_ylim(bottom=0)
    sizes.set_xlabel("snapshot time")
    rows.set_title(f"lake growth: {len(history)} snapshots with loads")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def pyplot():
    matplotlib = extra("matplotlib", "report")

    matplotlib.use("Agg")  # no display on a cluster node
    import matplotlib.pyplot as plt

    return plt
