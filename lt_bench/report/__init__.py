"""Reports from run records: per-class and calibration figures, knob curves, paired intervals."""

from lt_bench.report.page import write_report

__all__ = ["write_report"]
