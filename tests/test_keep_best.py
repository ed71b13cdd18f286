"""The rule that keeps a model, and the progress line, shared by the head and fine-tuning."""

from multilabel.training import keep_best

NAN = float("nan")


def test_only_a_higher_score_replaces_the_kept_model():
    assert keep_best.replaces(0.81, 0.8)
    assert not keep_best.replaces(0.8, 0.8)  # a tie keeps the earlier model
    assert not keep_best.replaces(0.79, 0.8)
    assert keep_best.replaces(0.0, -1.0)  # the first evaluation beats the initial -1


def test_a_nan_score_always_replaces_it_so_the_latest_wins_without_validation():
    assert keep_best.replaces(NAN, 0.9)
    assert keep_best.replaces(NAN, NAN)
    assert not keep_best.replaces(0.9, NAN)  # a number never beats a kept nan: no ordering
    assert not keep_best.replaces(0.5, 0.9)


def test_the_progress_line_reads_the_same_for_steps_and_epochs():
    result = {"mean_average_precision": 0.91234, "label_accuracy": 0.9}
    assert keep_best.progress_line("Step 20", 0.123456, result, True) == (
        "Step 20: train loss 0.1235, validation mAP 0.9123, label accuracy 0.9000 (kept)")
    assert keep_best.progress_line("Fine-tuning epoch 0", None, result, False) == (
        "Fine-tuning epoch 0: validation mAP 0.9123, label accuracy 0.9000")
    no_map = {"mean_average_precision": None, "label_accuracy": 1.0}
    assert keep_best.progress_line("Step 1", 0.5, no_map, False) == (
        "Step 1: train loss 0.5000, validation mAP nan, label accuracy 1.0000")
