"""Reports rendered from ``results.json`` alone: the paper's tables side by side with ours, plots, HTML.

``render_report(run_dir)`` writes ``report.md``, ``report.html`` (self-contained) and ``plots/*.png``.
"""

from poisonlab.report.render import render_report, summary_text

__all__ = ["render_report", "summary_text"]
