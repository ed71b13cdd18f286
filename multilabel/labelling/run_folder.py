"""A run folder: what retrain.py writes for one run, and how a reader finds and checks it.

A run's outputs (graph, TFLite model, labels, thresholds and their rule, measures, test
predictions) live in one folder under fixed names, each overridable by its own flag.
They must change as a set: a graph from one run read with another run's class names or
thresholds labels every image wrongly and says nothing. Each file is replaced
atomically, but one after another, so a run killed during export could leave a mix.

The run therefore writes, last, a manifest (`run_manifest.json`) naming each file of
the set with the SHA-256 of the bytes the run itself wrote into it (hashed while
writing, `base.atomic.recording`: a file another process replaced meanwhile is then
refused, never vouched for). A reader checks every file it uses against the manifest and
refuses a set in which any differs, naming the files: after a kill during export the
folder holds the new files written so far and the previous run's manifest, so the mix
is refused, never used. A folder swap (write the set into a fresh folder and rename it
in) was the other way; it is not used because the run folder also holds what must
outlive a run or grows during it (the bottleneck cache, checkpoints that --resume
continues from, TensorBoard logs that a running TensorBoard reads), and because each
output may be sent elsewhere by its flag, where no one folder holds the set. The
manifest covers any layout, and also refuses a set mixed by hand (a graph copied over
another run's).

A folder without a manifest (written before it existed, or by hand) is read as before.
A manifest is trusted only to say where files lie inside its folder: a path in it that
leads outside (absolute, or through `..`) is never used to find a file, only to check
one given by a flag (an output that a flag sent elsewhere is recorded by its absolute
path), so a tampered manifest cannot make a reader open /etc/passwd as class names.
Every file is read through `base.storage.read_regular` (no FIFO, device or folder).
"""

import dataclasses
import json
import os
import uuid

from multilabel.base import storage
from multilabel.base.atomic import write_text, written_sha256
from multilabel.base.digest import file_sha256
from multilabel.base.errors import UserError, file_error
from multilabel.base.options import output_files
from multilabel.evaluation.thresholds import rule_path

MANIFEST = "run_manifest.json"
# The outputs' names in a run folder, as retrain.py's options declare them.
_FILES = output_files()
GRAPH = _FILES["output_graph"]
LABELS = _FILES["output_labels"]
THRESHOLDS = _FILES["output_thresholds"]
TFLITE = _FILES["tflite_output_file"]
# The roles a quantized copy has its own file for (manifest role "tflite.int8" ...).
_VARIANT_ROLES = ("tflite", "thresholds", "rule")


def variant_path(path, variant):
    """Where an export's quantized copy `variant` (e.g. int8) of the file `path` goes:
    beside it, `output_graph.tflite` -> `output_graph.int8.tflite`."""
    stem, extension = os.path.splitext(os.fspath(path))
    return f"{stem}.{variant}{extension}"


def variant_role(role, variant):
    """The manifest's role of the copy `variant` of the file with `role`: `tflite.int8`."""
    return role if variant is None else f"{role}.{variant}"


def new_run_id():
    return uuid.uuid4().hex


class RunSet:
    """One run's outputs on their way into the manifest of `folder`.

    Each output is registered with one call once it is written, `add(role, path)`; the
    path must have been written through `base.atomic` (write_text, write_bytes,
    atomic_output) inside the run's `atomic.recording()` (retrain's `run_guard`), whose
    hash of the bytes written is what the manifest records. `write_manifest()` comes
    last: until it replaces the previous manifest, that one makes readers refuse the
    files that changed.
    """

    def __init__(self, folder, run_id):
        self.folder = os.fspath(folder)
        self.run_id = run_id
        self._entries = {}

    def add(self, role, path):
        """Record the file this run wrote at `path` as its `role` ("model_card")."""
        self._entries[role] = {"path": _relative(path, self.folder),
                               "sha256": written_sha256(path)}

    def paths(self):
        """{role: path as recorded} of the outputs added so far."""
        return {role: entry["path"] for role, entry in self._entries.items()}

    def write_manifest(self):
        """Write the manifest (atomically) naming every output added, as one run's set."""
        write_text(os.path.join(self.folder, MANIFEST), json.dumps(
            {"run_id": self.run_id, "files": dict(sorted(self._entries.items()))},
            indent=2) + "\n")


def _relative(path, folder):
    """`path` relative to `folder` where it lies below it, else absolute; '/' separated."""
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    inside = os.path.commonpath([path, folder]) == folder
    return (os.path.relpath(path, folder) if inside else path).replace(os.sep, "/")


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """Where a reader finds a run's graph, TFLite model (or None), labels and thresholds;
    for a quantized `variant` (e.g. int8), its TFLite model and thresholds."""

    folder: str
    graph: str
    tflite: str | None
    labels: str
    thresholds: str
    manifest: dict | None  # the folder's manifest, None when it has none
    variant: str | None = None  # a quantized copy's name; None: the float32 export

    def own_tflite(self):
        """Whether the TFLite model is the one the manifest records (then `check_set`
        proves it is the run's own export), rather than a file found beside the graph."""
        recorded = (self.manifest or {"files": {}})["files"].get("tflite")
        return (self.tflite is not None and recorded is not None and _inside(recorded["path"])
                and _same_path(os.path.join(self.folder, recorded["path"]), self.tflite))

    def check_set(self, used):
        """Raise UserError unless every file of `used` (roles, e.g. ("tflite", "labels"))
        that the manifest records is the file the manifest records: one run's set."""
        if self.manifest is None:
            return
        entries = self.manifest["files"]
        changed = []
        for role in used:
            path = getattr(self, role) if role != "rule" else rule_path(self.thresholds)
            entry = entries.get(variant_role(role, self.variant)
                                if role in _VARIANT_ROLES else role)
            if entry is None or path is None or not _same_path(
                    os.path.join(self.folder, entry["path"]), path):
                continue  # not the run's file (given by a flag): nothing to check
            if not os.path.exists(path) or _sha256(path) != entry["sha256"]:
                changed.append(os.path.basename(path))
        if changed:
            raise UserError(
                f"{', '.join(changed)} {'is' if len(changed) == 1 else 'are'} not the "
                f"file{'s' if len(changed) > 1 else ''} run {self.manifest['run_id']} wrote: "
                "the folder mixes two runs (a run stopped while writing its outputs?); run "
                "retrain.py again", os.path.join(self.folder, MANIFEST))


def _sha256(path):
    try:
        return file_sha256(path)
    except OSError as e:
        raise file_error(e, path, "file of the run") from e


def _inside(relative):
    """Whether a manifest's path stays inside its folder: relative, no `..`."""
    parts = relative.replace("\\", "/").split("/")
    return not os.path.isabs(relative) and ".." not in parts and relative not in ("", ".")


def _same_path(a, b):
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def model_files(model_dir=None, graph=None, labels=None, thresholds=None, variant=None):
    """The files to read: in `model_dir` (a run folder), or beside `graph`; `labels` and
    `thresholds` override. The manifest, where there is one, says where each file is;
    the TFLite model is the manifest's, or the graph's name with `.tflite`. A `variant`
    (a --quantize copy: float16, dynamic, int8) picks its TFLite model and thresholds,
    which must exist (UserError naming the folder)."""
    if model_dir is None and graph is None:
        raise ValueError("give model_dir or graph")
    if model_dir is not None and not os.path.isdir(model_dir):
        raise UserError("run folder not found (retrain.py --output_dir writes one)", model_dir)
    folder = model_dir if model_dir is not None else (os.path.dirname(graph) or ".")
    manifest = read_manifest(folder)
    recorded = {} if manifest is None else {
        role: os.path.join(folder, entry["path"]) for role, entry in manifest["files"].items()
        if _inside(entry["path"])}
    graph = graph or recorded.get("graph") or os.path.join(folder, GRAPH)
    tflite_role = variant_role("tflite", variant)
    if manifest is not None:
        # Only the run's own TFLite model: a stray one may be an older run's.
        tflite = recorded.get(tflite_role) if _same_path(recorded.get("graph", ""), graph) \
            else None
    else:
        tflite = os.path.splitext(graph)[0] + ".tflite"
        tflite = tflite if variant is None else variant_path(tflite, variant)
    if tflite is not None and not os.path.isfile(tflite):
        tflite = None
    default_thresholds = os.path.join(folder, THRESHOLDS)
    if variant is not None:
        if tflite is None:
            raise UserError(f"no {variant} TFLite model in this run folder (retrain.py "
                            f"--quantize {variant} writes one, where it keeps float's "
                            "accuracy: see its metrics.json)", folder)
        default_thresholds = variant_path(default_thresholds, variant)
    return ModelFiles(folder, graph, tflite,
                      labels or recorded.get("labels") or os.path.join(folder, LABELS),
                      thresholds or recorded.get(variant_role("thresholds", variant))
                      or default_thresholds, manifest, variant)


def read_manifest(folder):
    """The manifest of `folder` as a dict, None when there is none; UserError naming a
    manifest that is not one."""
    path = os.path.join(folder, MANIFEST)
    try:
        manifest = json.loads(storage.read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise file_error(e, path, "run's manifest") from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UserError(f"cannot read the run's manifest: {e}", path) from e
    files = manifest.get("files") if isinstance(manifest, dict) else None
    # The run id is printed in errors: a terminal escape in it could fake a line.
    if not (isinstance(files, dict) and isinstance(manifest.get("run_id"), str)
            and manifest["run_id"].isprintable() and len(manifest["run_id"]) <= 100 and all(
            isinstance(e, dict) and isinstance(e.get("path"), str)
            and isinstance(e.get("sha256"), str) for e in files.values())):
        raise UserError('not a run manifest: expected {"run_id": "printable text", "files": '
                        '{role: {"path": ..., "sha256": ...}}}', path)
    return manifest
