"""The Beam pipelines end to end on a handful of images, with a local runner.

`--runner FnApiRunner` is the engine Beam's DirectRunner runs these pipelines on; naming
it keeps the DirectRunner from first fetching its Prism binary from the network.
"""

import glob
import json
import logging
import os
import shutil

import numpy as np
import pytest

import data_generation
import label_image
import retrain
from multilabel import beam_bottlenecks, beam_label
from multilabel.features import bottleneck_shards, bottlenecks, engines, feature_modules
from multilabel.base.errors import EXIT_OK, EXIT_SOME_FAILED
from multilabel.features.input_pipeline import feature_batches
from tests.random_images import write_random_images
from tests.test_label_image import LABELS, MAGENTA, RED, write_graph, write_image

RUNNER = ["--runner", "FnApiRunner"]
NUM_IMAGES = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Eight distinct 8 x 8 images and a copy of the first, listed by data_generation.py."""
    folder = tmp_path_factory.mktemp("beam") / "data"
    rows = write_random_images(folder, NUM_IMAGES, seed=1)
    shutil.copy(folder / "images" / "1.png", folder / "images" / f"{NUM_IMAGES + 1}.png")
    rows.append(rows[0])
    (folder / "labels.json").write_text("\n".join(rows))
    assert data_generation.main(["--image_dir", str(folder)]) == 0
    return folder


def _in_process_vectors(module, paths, scratch):
    """The vectors retrain.py's own pipeline computes for `paths`, by digest."""
    height, width = feature_modules.image_size(module)
    engine = engines.make_engine("auto", module, str(scratch))
    vectors = np.concatenate(list(feature_batches(engine, paths, height, width, 4)))
    return {bottlenecks.content_hash(p): v for p, v in zip(paths, vectors)}


def test_bottlenecks_fill_the_cache_that_retrain_then_reads(dataset, tiny_module, tmp_path,
                                                            caplog):
    cache_dir = tmp_path / "bottlenecks"
    images = sorted(glob.glob(str(dataset / "images" / "*.png")))
    # One image already cached by retrain.py as a file of its own: not computed again.
    height, width = feature_modules.image_size(tiny_module)
    key = bottlenecks.module_key(feature_modules.module_fingerprint(tiny_module), height, width)
    expected = _in_process_vectors(tiny_module, images, tmp_path / "scratch")
    first = bottlenecks.content_hash(images[1])
    bottlenecks.BottleneckCache(str(cache_dir), key, 24).store(first, expected[first])

    argv = ["--image_dir", str(dataset), "--tfhub_module", tiny_module,
            "--bottleneck_dir", str(cache_dir), "--bottleneck_batch_size", "3"] + RUNNER
    with caplog.at_level(logging.INFO):
        assert beam_bottlenecks.main(argv) == EXIT_OK
    # Nine images, one a copy, one cached as a file: seven computed.
    assert ("9 images: computed 7 bottlenecks; 0 were in shards, 1 cached as files, 1 identical "
            "to another image") in caplog.text
    assert "0 images failed" in caplog.text
    written = bottleneck_shards.read_shards(str(cache_dir / key), 24)
    assert set(written) == set(expected) - {first}
    for digest, vector in written.items():
        assert engines.relative_difference([vector], [expected[digest]]) < 1e-5

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert beam_bottlenecks.main(argv) == EXIT_OK
    assert "computed 0 bottlenecks; 7 were in shards, 1 cached as files, 1 identical" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert retrain.main(_retrain_argv(dataset, tiny_module, cache_dir, tmp_path)) == 0
    assert f"All {NUM_IMAGES + 1} bottlenecks cached" in caplog.text


def _retrain_argv(dataset, module, cache_dir, tmp_path):
    out = tmp_path / "details"
    return ["--image_dir", str(dataset), "--tfhub_module", module,
            "--bottleneck_dir", str(cache_dir), "--how_many_training_steps", "10",
            "--output_graph", str(out / "graph.pb"), "--output_labels", str(out / "labels.txt"),
            "--output_thresholds", str(out / "thr.txt"), "--metrics_file", str(out / "m.json"),
            "--test_predictions", str(out / "test.jsonl"), "--summaries_dir", str(out / "logs"),
            "--checkpoint_path", str(out / "ckpt" / "retrain"),
            "--intermediate_output_graphs_dir", str(out / "intermediate")]


def test_retrain_keeps_its_cache_in_a_remote_folder(dataset, tiny_module, tmp_path, caplog):
    """A gs:// --bottleneck_dir goes through tf.io.gfile; TensorFlow's ram:// stands in."""
    cache_dir = "ram://retrain-bottlenecks"
    with caplog.at_level(logging.INFO):
        assert retrain.main(_retrain_argv(dataset, tiny_module, cache_dir, tmp_path)) == 0
    assert f"0 of {NUM_IMAGES + 1} bottlenecks cached" in caplog.text
    assert "kept in ram://retrain-bottlenecks/" in caplog.text  # the TFLite conversion
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert retrain.main(_retrain_argv(dataset, tiny_module, cache_dir, tmp_path)) == 0
    assert f"All {NUM_IMAGES + 1} bottlenecks cached" in caplog.text
    assert "TFLite engine: reusing ram://retrain-bottlenecks/" in caplog.text


def test_labels_every_good_image_as_label_image_does_and_reports_the_broken_one(
        tmp_path, capsys):
    details = tmp_path / "details"
    details.mkdir()
    write_graph(details / "output_graph.pb")
    (details / "output_labels.txt").write_text("".join(f"{n}\n" for n in LABELS))
    (details / "output_thresholds.txt").write_text("0.5\n0.5\n0.99\n")
    photos = tmp_path / "photos"
    for i, rgb in enumerate([RED, MAGENTA, (10, 200, 30), (0, 0, 255), (90, 90, 90)]):
        write_image(photos / f"{i}.png", rgb)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    model = ["--graph", str(details / "output_graph.pb")]
    prefix = tmp_path / "labels" / "part"

    assert beam_label.main(model + ["--image_dir", str(photos), "--output", str(prefix),
                                    "--batch_size", "2"] + RUNNER) == EXIT_SOME_FAILED
    records = [json.loads(line) for path in glob.glob(f"{prefix}-*")
               for line in open(path)]
    errors = [json.loads(line) for path in glob.glob(str(tmp_path / "labels" / "errors-part-*"))
              for line in open(path)]
    assert [e["image"] for e in errors] == [str(photos / "broken.jpg")]
    assert "cannot decode image" in errors[0]["error"]

    capsys.readouterr()
    assert label_image.main(model + ["--output_format", "json", str(photos)]) == 1
    reference = {r["image"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(r["image"] for r in records) == sorted(reference)
    for record in records:
        wanted = reference[record["image"]]
        np.testing.assert_allclose(record["probabilities"], wanted["probabilities"], atol=1e-5)
        assert (record["labels"], record["predicted"]) == (wanted["labels"], wanted["predicted"])
    assert os.path.basename(min(r["image"] for r in records)) == "0.png"


@pytest.mark.parametrize("flags, threads", [
    ([], 4),
    (["--runner", "DirectRunner", "--direct_running_mode", "multi_threading"], 4),
    (["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"], 2),
    (["--direct_num_workers", "0", "--direct_running_mode", "multi_processing"], 1),
    (["--runner", "DataflowRunner"], 1),
])
def test_one_thread_per_model_when_there_is_a_process_per_core(flags, threads):
    from multilabel.beam import transforms

    options = transforms.pipeline_options(flags)
    assert transforms.inference_threads(options, cores=4) == threads


def test_flags_left_over_go_to_beam_and_an_image_source_is_required(capsys):
    args, beam_argv = beam_label.parse_args(["--image_dir", "x", "--output", "o",
                                             "--runner", "DirectRunner", "--batch_size", "4"])
    assert (args.image_dir, args.batch_size, beam_argv) == ("x", 4, ["--runner", "DirectRunner"])
    with pytest.raises(SystemExit) as stop:
        beam_label.parse_args(["--output", "o"])
    assert stop.value.code == 2 and "--image_dir or --image_list" in capsys.readouterr().err


def test_a_module_set_fills_each_members_cache_as_retrain_keys_it(dataset, tmp_path, caplog):
    """Two tiny modules of different sizes: the small one sees the set's images resized."""
    from multilabel.features import module_set
    from tests.tiny_module import make_tiny_module

    handles = (make_tiny_module(str(tmp_path / "small"), size=32),
               make_tiny_module(str(tmp_path / "large"), size=48))
    cache_dir = str(tmp_path / "bottlenecks")
    argv = ["--image_dir", str(dataset), "--tfhub_module", ",".join(handles),
            "--model_dir", str(tmp_path / "model"), "--bottleneck_dir", cache_dir,
            "--bottleneck_engine", "tensorflow"] + RUNNER
    with caplog.at_level(logging.INFO):
        assert beam_bottlenecks.main(argv) == EXIT_OK
    assert caplog.text.count("9 images: computed 8 bottlenecks") == 2

    # retrain.py's own opener and in-process pipeline, on a fresh cache, as reference.
    images = sorted(glob.glob(str(dataset / "images" / "*.png")))
    opened = module_set.load_module_set(handles, str(tmp_path / "model"),
                                        str(tmp_path / "reference"), "tensorflow")
    assert opened.members[0].key != bottlenecks.module_key(
        feature_modules.module_fingerprint(handles[0]), 32, 32)  # resized: a key of its own
    expected = module_set.set_bottlenecks(images, opened, str(tmp_path / "reference"), 4)
    for member, start in zip(opened.members, (0, opened.members[0].dim)):
        written = bottleneck_shards.read_shards(os.path.join(cache_dir, member.key), member.dim)
        assert len(written) == NUM_IMAGES
        for path, row in zip(images, expected):
            vector = written[bottlenecks.content_hash(path)]
            assert engines.relative_difference([vector], [row[start:start + member.dim]]) < 1e-5


def test_label_refuses_a_graph_with_file_ops_unless_allowed(tmp_path, capsys):
    import tensorflow as tf

    details = tmp_path / "details"
    details.mkdir()
    write_graph(details / "output_graph.pb")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((details / "output_graph.pb").read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        tf.io.read_file(tf.constant("somewhere"), name="sneaky")
    (details / "output_graph.pb").write_bytes(graph.as_graph_def().SerializeToString())
    (details / "output_labels.txt").write_text("".join(f"{n}\n" for n in LABELS))
    photos = tmp_path / "photos"
    write_image(photos / "0.png", RED)
    argv = ["--graph", str(details / "output_graph.pb"), "--image_dir", str(photos),
            "--output", str(tmp_path / "labels" / "part")] + RUNNER
    assert beam_label.main(argv) == 2
    assert "ReadFile" in capsys.readouterr().err
    assert beam_label.main(argv + ["--allow_ops", "ReadFile"]) == EXIT_OK
    assert len(glob.glob(str(tmp_path / "labels" / "part-*"))) == 1


def test_the_code_shipping_flags_reach_beams_setup_options():
    from apache_beam.options.pipeline_options import SetupOptions

    from multilabel.beam import transforms

    shipping = ["--setup_file", "./pyproject.toml", "--extra_package", "dist/m.whl"]
    for command, own in ((beam_bottlenecks, ["--image_dir", "x"]),
                         (beam_label, ["--image_dir", "x", "--output", "o"])):
        _, beam_argv = command.parse_args(own + shipping)
        setup = transforms.pipeline_options(beam_argv).view_as(SetupOptions)
        assert (setup.setup_file, setup.extra_packages) == ("./pyproject.toml", ["dist/m.whl"])
