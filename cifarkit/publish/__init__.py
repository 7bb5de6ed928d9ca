"""Book-only code: the build (table of contents, cache keys, execution, preflight, site), the
presentation demo, the introduction's findings and the reproducibility appendix."""
