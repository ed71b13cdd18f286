"""The Beam pipelines on a real local cluster: a job server and worker processes that
install the shipped wheel, on 127.0.0.1 (what `make beam-cluster` runs, on a tiny set).

About two minutes on two busy cores: each of the six processes that run a model
imports TensorFlow.
"""

import os
import re

import pytest

import data_generation
from multilabel import beam_cluster
from multilabel.beam.cluster import LocalCluster
from tests.random_images import write_random_images

NUM_IMAGES = 6


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "data"
    rows = write_random_images(folder, NUM_IMAGES, seed=2)
    (folder / "labels.json").write_text("\n".join(rows))
    assert data_generation.main(["--image_dir", str(folder)]) == 0
    return folder


def test_retrain_log_shows_whether_every_module_was_fully_cached():
    both = "INFO All 40 bottlenecks cached\nINFO All 40 bottlenecks cached\n"
    assert beam_cluster.cache_was_complete(both, 2) == []
    assert beam_cluster.cache_was_complete(both, 3) != []
    partial = "INFO 30 of 40 bottlenecks cached; computing 10\nINFO All 40 bottlenecks cached\n"
    assert "computing 10" in beam_cluster.cache_was_complete(partial, 2)[0]
    assert beam_cluster.cache_was_complete(
        both + "Computing bottlenecks of 3 images for a, b, decoded once", 2) != []


@pytest.mark.slow
def test_the_cluster_stops_every_process_it_started():
    with LocalCluster(workers=2) as cluster:
        group = cluster._pool.pid
        assert set(cluster.addresses.values()) == {a for a in cluster.addresses.values()
                                                   if a.startswith("127.0.0.1:")}
        os.killpg(group, 0)  # running
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


@pytest.mark.slow
def test_both_pipelines_run_on_the_cluster_with_the_shipped_code(dataset, tiny_module,
                                                                 tmp_path, capsys):
    # Relative paths, as `make beam-cluster` gives them: the workers run elsewhere.
    argv = ["--image_dir", os.path.relpath(dataset),
            "--tfhub_module", tiny_module, "--model_dir", str(tmp_path / "model"),
            "--bottleneck_dir", os.path.relpath(tmp_path / "bottlenecks"),
            "--label_images", "4", "--training_steps", "10",
            "--timeout", "300"]
    assert beam_cluster.main(argv) == 0
    out = capsys.readouterr().out
    assert "All checks hold." in out
    workers = re.findall(r"worker (.*) pid (\d+), code in (\S+): (\d+) images", out)
    # Both pipelines ran on two worker processes each, with the code the job shipped
    # (installed by the worker), not the checkout.
    assert len({pid for _, pid, _, _ in workers}) == 4
    assert all("/installs/" in code and not code.startswith(beam_cluster.ROOT)
               for _, _, code, _ in workers)
    bottleneck_images = sum(int(n) for _, pid, _, n in workers[:2])
    assert bottleneck_images == NUM_IMAGES
