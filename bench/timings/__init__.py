"""Where time goes: the scripts behind README.md's Performance figures."""
