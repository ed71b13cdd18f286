"""Checks of the test suite itself: how many planted bugs it catches, and what it runs."""
