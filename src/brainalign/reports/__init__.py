"""Reports of an experiment folder: one self-contained HTML page, Markdown and JSON.

    write_report(experiment_dir) -> {"html": Path, "md": Path, "json": Path}

The report reads run folders (result.json, flags.safetensors) and, when present, study.json; it never
trains or attacks. See docs/study.md for how to read it.
"""

from __future__ import annotations

from pathlib import Path

from brainalign.io import write_json, write_text
from brainalign.reports.collect import collect_report
from brainalign.reports.render import figures, render_html, render_markdown

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def write_report(experiment_dir: str | Path, *, baseline: str | None = None, attack: str | None = None,
                 level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Path]:
    """Write report.html, report.md and report.json into the experiment folder; return their paths.

    Args:
        experiment_dir: the folder of the run folders (``runs/<experiment>``).
        baseline: the baseline condition (default: "baseline", else the only plain condition).
        attack: the headline attack key (default: the study's attack, else PGD-Linf with the most steps).
        level, n_boot, seed: interval level, bootstrap draws and their seed for the paired statistics.
    """
    experiment_dir = Path(experiment_dir)
    report = collect_report(experiment_dir, baseline=baseline, attack=attack, level=level, n_boot=n_boot,
                            seed=seed)
    figs = figures(report)
    report["figures"] = {name: png is not None for name, (png, _) in figs.items()}
    paths = {"html": experiment_dir / REPORT_HTML, "md": experiment_dir / REPORT_MD,
             "json": experiment_dir / REPORT_JSON}
    write_text(paths["html"], render_html(report, figs))
    write_text(paths["md"], render_markdown(report))
    write_json(paths["json"], report)
    return paths


__all__ = ["collect_report", "write_report"]
