"""Reports: result objects and their renderers (table, JSON, Markdown, JUnit)."""
