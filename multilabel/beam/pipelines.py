"""The two Beam pipelines: bottlenecks into the cache, and labels for many images.

Both start from a list of paths made in the launching process; `Create` hands a whole
list to one worker, so a `Reshuffle` spreads it before any work is done. Bad images go
to a dead-letter output and are counted; they never stop the job.
"""

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from multilabel.features import bottleneck_shards, bottlenecks
from multilabel.base import storage
from multilabel.beam.transforms import (FAILED, METRICS, DecodeImage, FeatureModelHandler,
                                        FrozenGraphHandler, HashImage)
from multilabel.labelling.label_report import Report


def add_bottlenecks(pipeline, paths, module, bottleneck_dir, shard_prefix, batch_size, threads):
    """Compute the bottleneck of every image of `paths` not in the cache yet.

    `module` is an object with `path`, `height`, `width`, `key`, `dim` and `engine` (the
    name of the engine to run); its cache folder is `<bottleneck_dir>/<key>`. The cache
    is checked by content: the images' digests are joined with the digests of the
    shards already written (so a cache of a million vectors is never loaded into one
    process), then each remaining one is looked up as a per-image file. Identical
    images are computed once. Only digests and paths are shuffled, never image bytes:
    a file is read once to hash it and again to decode it if it is still missing. The vectors are written as new shard files
    `<shard_prefix>-SSSSS-of-NNNNN.txt`. Returns the dead-letter PCollection of
    (path, message).
    """
    hashed = (pipeline
              | "Paths" >> beam.Create(sorted(set(paths)))
              | "Spread" >> beam.Reshuffle()
              | "Hash" >> beam.ParDo(HashImage()).with_outputs(FAILED, main="hashed"))
    cache_folder = storage.join(bottleneck_dir, module.key)
    if bottleneck_shards.shard_files(cache_folder):
        in_shards = (pipeline
                     | "Shards" >> beam.io.ReadFromText(
                         bottleneck_shards.shard_files_pattern(cache_folder))
                     | "ShardDigests" >> beam.FlatMap(_record_digest, module.dim))
    else:
        in_shards = pipeline | "NoShards" >> beam.Create([])
    decoded = (
        {"image": hashed.hashed, "cached": in_shards}
        | "Join" >> beam.CoGroupByKey()
        | "NotInShards" >> beam.FlatMap(_first_uncached_path)
        | "NotInFiles" >> beam.ParDo(_SkipCachedFiles(bottleneck_dir, module.key, module.dim))
        | "Decode" >> beam.ParDo(DecodeImage(module.height, module.width))
        .with_outputs(FAILED, main="decoded"))
    handler = FeatureModelHandler(module.engine, module.path, cache_folder, batch_size, threads)
    _ = (decoded.decoded
         | "Features" >> RunInference(KeyedModelHandler(handler))
         | "Record" >> beam.Map(lambda kv: bottleneck_shards.format_record(kv[0],
                                                                           kv[1].inference))
         | "Count" >> beam.Map(_count, "computed")
         | "Write" >> beam.io.WriteToText(shard_prefix,
                                          file_name_suffix=bottleneck_shards.SHARD_SUFFIX,
                                          skip_if_empty=True))
    return (hashed[FAILED], decoded[FAILED]) | "Failed" >> beam.Flatten()


def _record_digest(line, dim):
    """The digest of a well-formed shard record; none for a torn one (it is recomputed)."""
    try:
        yield bottleneck_shards.parse_record(line, dim)[0], True
    except ValueError:
        return


def _first_uncached_path(joined):
    digest, groups = joined
    paths = list(groups["image"])
    if not paths:
        return
    beam.metrics.Metrics.counter(METRICS, "identical").inc(len(paths) - 1)
    if list(groups["cached"]):
        beam.metrics.Metrics.counter(METRICS, "in_shards").inc()
    else:
        yield digest, min(paths)  # identical images: one path computes them all


class _SkipCachedFiles(beam.DoFn):
    """Drops the images that retrain.py already cached as a file of their own."""

    def __init__(self, bottleneck_dir, key, dim):
        self._cache = bottlenecks.BottleneckCache(bottleneck_dir, key, dim)
        self._cached = beam.metrics.Metrics.counter(METRICS, "cached_files")

    def process(self, element):
        if self._cache.load_file(element[0]) is None:
            yield element
        else:
            self._cached.inc()


def _count(element, name):
    beam.metrics.Metrics.counter(METRICS, name).inc()
    return element


def add_labels(pipeline, paths, graph_path, labels, thresholds, output_prefix, errors_prefix,
               height, width, batch_size, threads, never_empty=False):
    """Label every image of `paths` with the frozen graph; write JSON records and errors.

    Each good image becomes one line of `output_prefix-SSSSS-of-NNNNN`, the record
    label_image.py --output_format json prints for it; each bad one a line
    `{"image": ..., "error": ...}` of `errors_prefix-SSSSS-of-NNNNN`. `never_empty` applies
    the top-margin rule, as label_image.py does where the run recorded it.
    """
    report = Report("json", tuple(labels), thresholds, never_empty=never_empty)
    decoded = (pipeline
               | "Paths" >> beam.Create(list(paths))
               | "Spread" >> beam.Reshuffle()
               | "Keyed" >> beam.Map(lambda path: (path, path))
               | "Decode" >> beam.ParDo(DecodeImage(height, width))
               .with_outputs(FAILED, main="decoded"))
    handler = FrozenGraphHandler(graph_path, batch_size, threads)
    _ = (decoded.decoded
         | "Label" >> RunInference(KeyedModelHandler(handler))
         | "Record" >> beam.Map(lambda kv: report.record(kv[0], kv[1].inference).rstrip("\n"))
         | "Count" >> beam.Map(_count, "labelled")
         | "Write" >> beam.io.WriteToText(output_prefix))
    _ = (decoded[FAILED]
         | "ErrorRecord" >> beam.Map(_error_record)
         | "WriteErrors" >> beam.io.WriteToText(errors_prefix, skip_if_empty=True))


def _error_record(failure):
    import json

    path, message = failure
    return json.dumps({"image": path, "error": message})
