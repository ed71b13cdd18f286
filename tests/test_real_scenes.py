"""Integration: the real MobileNetV2 module on a few dozen real scene photos."""

import json

import numpy as np

import label_image
import retrain

def test_retrain_on_real_photos_learns_and_exports_what_it_measured(
        small_scene_set, mobilenet_v2, tmp_path, capsys):
    out = tmp_path / "details"
    assert retrain.main([
        "--image_dir", str(small_scene_set), "--tfhub_module", mobilenet_v2, "--num_classes", "5",
        "--bottleneck_dir", str(out / "bottlenecks"), "--output_graph", str(out / "graph.pb"),
        "--output_labels", str(out / "labels.txt"), "--output_thresholds", str(out / "thr.txt"),
        "--metrics_file", str(out / "metrics.json"), "--test_predictions", str(out / "test.jsonl"),
        "--summaries_dir", str(out / "logs"), "--checkpoint_path", str(out / "ckpt" / "retrain"),
        "--report_page", str(out / "report.html"),
        "--how_many_training_steps", "300", "--eval_step_interval", "50",
        "--validation_percentage", "15"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    # 15 test photos after ~40 training ones: chance would be near 0.3.
    assert report["test"]["mean_average_precision"] > 0.85
    assert report["export_check_max_difference"] < 1e-5

    predictions = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert label_image.main(["--graph", str(out / "graph.pb"), "--labels", str(out / "labels.txt"),
                             "--thresholds", str(out / "thr.txt"), "--output_format", "json",
                             *[p["image"] for p in predictions]]) == 0
    labelled = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    np.testing.assert_allclose([r["probabilities"] for r in labelled],
                               [p["probabilities"] for p in predictions], atol=1e-5)
