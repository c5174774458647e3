"""Reports: run directories -> reports/<suite>/ (markdown, self-contained HTML, tidy CSVs, PNG figures).

matplotlib and rliable are imported only when a report is built.
"""
from __future__ import annotations

from pathlib import Path


def build_report(runs_dir: Path, suite: str | None, out_dir: Path | None, *, reps: int | None = None) -> Path:
    """Write the report of `suite` (or of every suite under runs_dir when None); returns its directory."""
    from harness.report.build import build_report as _build

    return _build(runs_dir, suite, out_dir, reps=reps)


__all__ = ["build_report"]
