"""Tests for whisperforge.evaluate.plots: a run's loss curve and the summary's CER chart."""

from __future__ import annotations

import pytest
from test_report import _assert_png, _state, _write_json

from whisperforge.core.errors import WhisperforgeError
from whisperforge.evaluate.plots import plot_cer, plot_loss

# --- plot_loss ----------------------------------------------------------------------------------


def test_plot_loss_writes_png(tmp_path):
    state = _write_json(tmp_path / "trainer_state.json", _state("alpha"))
    out = tmp_path / "plots" / "loss.png"
    plot_loss(state, out, "alpha: loss")
    _assert_png(out)
    again = tmp_path / "loss2.png"
    plot_loss(state, again, "alpha: loss")
    assert out.read_bytes() == again.read_bytes()


def test_plot_loss_empty_history_raises_naming_file(tmp_path):
    state = _write_json(tmp_path / "trainer_state.json", _state("alpha", log_history=[]))
    with pytest.raises(WhisperforgeError, match=r"trainer_state\.json.*no 'loss'"):
        plot_loss(state, tmp_path / "loss.png", "t")
    assert not (tmp_path / "loss.png").exists()
    # A summary-only history (train_loss, no per-step loss) is just as empty.
    only_summary = [{"step": 30, "train_loss": 1.6, "train_runtime": 3.0}]
    _write_json(state, _state("alpha", log_history=only_summary))
    with pytest.raises(WhisperforgeError, match=r"trainer_state\.json"):
        plot_loss(state, tmp_path / "loss.png", "t")


# --- plot_cer -----------------------------------------------------------------------------------


def test_plot_cer_draws_each_series_and_skips_missing_sets(tmp_path):
    cers = {
        ("base", "test"): {"cer": 0.25},
        ("base", "lectures"): {"cer": 0.10},
        ("alpha (int8)", "test"): {"cer": 0.1013},  # no lectures result: no bar, no error
    }
    one, two, again = tmp_path / "one.png", tmp_path / "two.png", tmp_path / "again.png"
    plot_cer(cers, ["base"], ["test", "lectures"], one)
    plot_cer(cers, ["base", "alpha (int8)"], ["test", "lectures"], two)
    plot_cer(cers, ["base", "alpha (int8)"], ["test", "lectures"], again)
    _assert_png(one)
    _assert_png(two)
    assert one.read_bytes() != two.read_bytes()  # the second series is drawn
    assert two.read_bytes() == again.read_bytes()
