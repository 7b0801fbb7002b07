"""A static, self-contained results site (HTML, CSS, Plotly charts) generated from the run records."""

from lt_bench.site.writer import write_site

__all__ = ["write_site"]
