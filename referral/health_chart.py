"""The operators' chart of verification age: a bar per 30-day bucket of days since a
listing was last verified, and one for never verified, as a server-rendered SVG made
with matplotlib (its SVG backend, no pyplot state; text stays text; no external assets).

The SVG carries a ``<title>`` with every count (its text alternative); the page beside
it shows the same counts as a table.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

#: Colour of each kind of bar (blue / orange / grey: told apart without colour vision too,
#: and the labels under the bars say the same).
COLOURS = {"verified": "#1f6fb4", "stale": "#d9822b", "hidden": "#6b6b6b"}


def bucket_label(bucket: dict) -> str:
    """``0-29``, ..., ``360+``."""
    if bucket["to_days"] is None:
        return f"{bucket['from_days']}+"
    return f"{bucket['from_days']}-{bucket['to_days']}"


def chart_title(ages: dict) -> str:
    """The chart's text alternative: what it shows, with every count."""
    total = sum(b["listings"] for b in ages["buckets"]) + ages["never_verified"]
    parts = [(f"{b['from_days']} to {b['to_days']} days" if b["to_days"] is not None
              else f"{b['from_days']} days or more") + f": {b['listings']}"
              for b in ages["buckets"]]
    return (f"Days since each of {total} listings was last verified by its clinic, in "
            f"30-day groups: {'; '.join(parts)}; never verified: {ages['never_verified']}.")


def verification_age_svg(ages: dict, stale_after_days: int) -> str:
    """The chart of ``health.verification_age`` figures, as SVG text."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    buckets = ages["buckets"]
    labels = [bucket_label(b) for b in buckets] + ["never"]
    counts = [b["listings"] for b in buckets] + [ages["never_verified"]]
    ids = [f"bar-{b['from_days']}" for b in buckets] + ["bar-never"]
    # the last bucket (360 days or more) and never verified: hidden from search, or soon
    kinds = ["hidden" if b["to_days"] is None
             else "verified" if b["to_days"] < stale_after_days else "stale"
             for b in buckets] + ["hidden"]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "verification-age",
                                "font.size": 9}):
        figure = Figure(figsize=(8, 3.4))
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        bars = axes.bar(range(len(counts)), counts,
                        color=[COLOURS[kind] for kind in kinds], width=0.8)
        for bar, gid in zip(bars, ids, strict=True):
            bar.set_gid(gid)
        axes.bar_label(bars, labels=[f"{count:,}" for count in counts], padding=2)
        axes.set_xticks(range(len(counts)), labels, rotation=40, ha="right")
        axes.set_xlabel("Days since the clinic last verified the listing")
        axes.set_ylabel("Listings")
        axes.spines[["top", "right"]].set_visible(False)
        axes.margins(y=0.15)
        figure.tight_layout()
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    start = svg.index(">", svg.index("<svg")) + 1  # the text alternative, first in the SVG
    return (svg[:start] + f"\n <title>{escape(chart_title(ages))}</title>" + svg[start:])
