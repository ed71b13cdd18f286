"""Where time goes: the scripts behind docs/performance.md's figures."""
