"""The two Beam pipelines: bottlenecks into the cache, and labels for many images.

Both start from a list of paths made in the launching process; `Create` hands a whole
list to one worker, so a `Reshuffle` spreads it before any work is done. Bad images go
to a dead-letter output and are counted; they never stop the job.
"""

import collections

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from multilabel.features import bottleneck_shards, bottlenecks, module_set
from multilabel.base import storage
from multilabel.beam.transforms import (FAILED, METRICS, DecodeImage, FeatureModelHandler,
                                        FrozenGraphHandler, HashImage, count_on_worker,
                                        for_workers)
from multilabel.labelling.label_report import Report


class WorkerMember(collections.namedtuple(
        "WorkerMember",
        "handle path input_height input_width height width key dim engine engine_key")):
    """One module of a set, as a worker needs it (module_set.Member without its engine).

    Images are decoded at the set's `input_height` x `input_width` and resized to the
    member's own `height` x `width` where they differ, as module_set does; `engine` is
    the engine's name, `engine_key` the cache folder holding its TFLite conversion.
    """


def member_namespace(member):
    """The counters' namespace of one member's branch of the pipeline."""
    return f"{METRICS}/{member.key}"


def add_bottlenecks(pipeline, paths, members, bottleneck_dir, run_name, batch_size, threads):
    """Compute the bottleneck of every image of `paths` not in each member's cache yet.

    `members` are the modules of the set (one for a single module, see `WorkerMember`); each
    member's cache folder is `<bottleneck_dir>/<key>`. A cache is checked by content:
    the images' digests are joined with the digests of the shards already written (so
    a cache of a million vectors is never loaded into one process), then each remaining
    one is looked up as a per-image file. Identical images are computed once. Only
    digests and paths are shuffled, never image bytes: a file is read once to hash it
    and again, for each member that lacks it, to decode it. Each member's vectors are
    written as new shard files `<key>/shards/<run_name>-SSSSS-of-NNNNN.txt`. Returns
    the PCollection of the distinct paths of the images that failed.
    """
    hashed = (pipeline
              | "Paths" >> beam.Create(sorted(set(paths)))
              | "Spread" >> beam.Reshuffle()
              | "Hash" >> beam.ParDo(HashImage()).with_outputs(FAILED, main="hashed"))
    failures = [hashed[FAILED]]
    for i, member in enumerate(members):
        failures.append(_add_member(pipeline, f"[{i}] ", hashed.hashed, member,
                                    bottleneck_dir, run_name, batch_size, threads))
    return (failures
            | "Failed" >> beam.Flatten()
            | "FailedPaths" >> beam.Map(lambda failure: failure[0])
            | "FailedOnce" >> beam.Distinct()
            | "CountFailed" >> beam.Map(_count, "failed_images", METRICS))


def _add_member(pipeline, label, hashed, member, bottleneck_dir, run_name, batch_size, threads):
    """One member's branch: what its cache lacks, decoded, computed and written."""
    namespace = member_namespace(member)
    cache_folder = storage.join(bottleneck_dir, member.key)
    if bottleneck_shards.shard_files(cache_folder):
        in_shards = (pipeline
                     | label + "Shards" >> beam.io.ReadFromText(
                         bottleneck_shards.shard_files_pattern(cache_folder))
                     | label + "ShardDigests" >> beam.FlatMap(_record_digest, member.dim))
    else:
        in_shards = pipeline | label + "NoShards" >> beam.Create([])
    decoded = (
        {"image": hashed, "cached": in_shards}
        | label + "Join" >> beam.CoGroupByKey()
        | label + "NotInShards" >> beam.FlatMap(_first_uncached_path, namespace)
        | label + "NotInFiles" >> beam.ParDo(
            _SkipCachedFiles(bottleneck_dir, member.key, member.dim, namespace))
        | label + "Decode" >> beam.ParDo(DecodeImage(member.input_height, member.input_width))
        .with_outputs(FAILED, main="decoded"))
    handler = FeatureModelHandler(member.engine, member.path,
                                  storage.join(bottleneck_dir, member.engine_key),
                                  (member.height, member.width), module_set.resize_for,
                                  batch_size, threads)
    prefix = storage.join(bottleneck_shards.shards_folder(cache_folder), run_name)
    _ = (decoded.decoded
         | label + "Features" >> RunInference(KeyedModelHandler(handler))
         | label + "Record" >> beam.Map(
             lambda kv: bottleneck_shards.format_record(kv[0], kv[1].inference))
         | label + "Count" >> beam.Map(_count, "computed", namespace)
         | label + "Write" >> beam.io.WriteToText(prefix,
                                                  file_name_suffix=bottleneck_shards.SHARD_SUFFIX,
                                                  skip_if_empty=True))
    return decoded[FAILED]


def _record_digest(line, dim):
    """The digest of a well-formed shard record; none for a torn one (it is recomputed)."""
    try:
        yield bottleneck_shards.parse_record(line, dim)[0], True
    except ValueError:
        return


def _first_uncached_path(joined, namespace):
    digest, groups = joined
    paths = list(groups["image"])
    if not paths:
        return
    beam.metrics.Metrics.counter(namespace, "identical").inc(len(paths) - 1)
    if list(groups["cached"]):
        beam.metrics.Metrics.counter(namespace, "in_shards").inc()
    else:
        yield digest, min(paths)  # identical images: one path computes them all


class _SkipCachedFiles(beam.DoFn):
    """Drops the images that retrain.py already cached as a file of their own."""

    def __init__(self, bottleneck_dir, key, dim, namespace):
        self._cache = bottlenecks.BottleneckCache(bottleneck_dir, key, dim)
        self._cached = beam.metrics.Metrics.counter(namespace, "cached_files")

    def process(self, element):
        if self._cache.load_file(element[0]) is None:
            yield element
        else:
            self._cached.inc()


def _count(element, name, namespace):
    """Count an element done; the images a model ran on are also counted per worker."""
    beam.metrics.Metrics.counter(namespace, name).inc()
    if name in ("computed", "labelled"):
        count_on_worker("images")
    return element


class WorkerClassifier(collections.namedtuple(
        "WorkerClassifier", "graph allow_ops labels thresholds never_empty timeout")):
    """The classifier as beam_label's workers rebuild it: the frozen graph's path, the ops
    it may hold beyond a classifier's (label_image.py --allow_ops), the class names,
    thresholds and top-margin rule (`never_empty`) of the `Classifier` loaded to check it,
    and the seconds one run of the graph may take (--timeout)."""


def add_labels(pipeline, paths, model, output_prefix, errors_prefix, height, width, batch_size,
               threads):
    """Label every image of `paths` with `model` (WorkerClassifier); write JSON records and
    errors.

    Each good image becomes one line of `output_prefix-SSSSS-of-NNNNN`, the record
    label_image.py --output_format json prints for it; each bad one a line
    `{"image": ..., "error": ...}` of `errors_prefix-SSSSS-of-NNNNN`.
    """
    report = Report("json", tuple(model.labels), model.thresholds,
                    never_empty=model.never_empty)
    decoded = (pipeline
               # Each record names its image as given; workers read it by absolute path.
               | "Paths" >> beam.Create([(path, for_workers(path)) for path in paths])
               | "Spread" >> beam.Reshuffle()
               | "Decode" >> beam.ParDo(DecodeImage(height, width))
               .with_outputs(FAILED, main="decoded"))
    handler = FrozenGraphHandler(model.graph, model.allow_ops, batch_size, threads,
                                 model.timeout)
    _ = (decoded.decoded
         | "Label" >> RunInference(KeyedModelHandler(handler))
         | "Record" >> beam.Map(lambda kv: report.record(kv[0], kv[1].inference).rstrip("\n"))
         | "Count" >> beam.Map(_count, "labelled", METRICS)
         | "Write" >> beam.io.WriteToText(output_prefix))
    _ = (decoded[FAILED]
         | "ErrorRecord" >> beam.Map(_error_record)
         | "WriteErrors" >> beam.io.WriteToText(errors_prefix, skip_if_empty=True))


def _error_record(failure):
    import json

    path, message = failure
    return json.dumps({"image": path, "error": message})
