"""retrain.py's output flags for a bench run: every output in one scratch folder.

The bench scripts run retrain.py many times; none may write to the project's own
MODEL_DETAILS/, and each reads its run's outputs back by these names.
"""

import os


def output_flags(folder):
    """The flags that put a retrain.py run's outputs (the bottleneck cache aside) in `folder`."""
    return ["--output_graph", os.path.join(folder, "output_graph.pb"),
            "--output_labels", os.path.join(folder, "output_labels.txt"),
            "--output_thresholds", os.path.join(folder, "output_thresholds.txt"),
            "--metrics_file", os.path.join(folder, "metrics.json"),
            "--test_predictions", os.path.join(folder, "test_predictions.jsonl"),
            "--summaries_dir", os.path.join(folder, "retrain_logs"),
            "--checkpoint_path", os.path.join(folder, "checkpoints", "retrain"),
            "--intermediate_output_graphs_dir", os.path.join(folder, "intermediate"),
            "--report_page", os.path.join(folder, "report.html")]
