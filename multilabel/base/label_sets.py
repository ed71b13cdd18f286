"""A set of class names written in one text field, and the order class names come in.

Every output that writes a label set into one field (label_image.py's CSV `predicted`
column, `label_issues.csv`) joins the names with `SEPARATOR`, a tab, and
data_generation.py splits label_image.py's `predicted` column on it. A tab is the one
separator no class name can hold: class names with control characters (tab, newline,
NUL, escapes) are refused wherever names are read (`data.listfile.check_class_names`),
so every name reads back whole, spaces, `&`, commas and accents included
(`black & white`, `sun set`, `désert`). Pages for people show each name on its own
instead.

No TensorFlow here.
"""

SEPARATOR = "\t"
SEPARATOR_NAME = "a tab"
# The last column of label_image.py's CSV: the predicted set, joined by SEPARATOR.
PREDICTED_COLUMN = "predicted"


def join(names):
    """One field holding `names`, in the order given."""
    return SEPARATOR.join(names)


def split(field, separator=SEPARATOR):
    """The names in one field, blanks around each stripped and empty ones dropped."""
    return [name.strip() for name in field.split(separator) if name.strip()]


def sorted_names(names):
    """`names` in the order classes take where the data gives none: alphabetical
    ignoring case (`Beach` beside `beach`, not before every lower-case name), ties by
    the exact name, so the order never depends on the order names were found in."""
    return tuple(sorted(names, key=lambda name: (name.casefold(), name)))
