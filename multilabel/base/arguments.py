"""argparse types the commands share: a count of at least 1, a list of names."""

import argparse
import math


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 1, got {text!r}")
    return value


def positive_float(text):
    """An argparse type: a finite number above 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def positive_int_or(word):
    """An argparse type: an integer of at least 1, or `word` itself (`"all"`)."""
    def parse(text):
        if text == word:
            return word
        try:
            return positive_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be an integer of at least 1 or {word!r}, got {text!r}") from None

    parse.__name__ = f"positive_int_or_{word}"
    return parse


def names(text):
    """An argparse type: comma-separated names (modules, ops) as a tuple, none empty."""
    values = tuple(value.strip() for value in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of names: {text!r}")
    return values

