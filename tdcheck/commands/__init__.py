"""Commands: the library API behind each CLI command (compare, sweep, merge, bench)."""
