"""Tests for whisperforge.plots: a run's loss curve (the summary's CER chart: test_report.py)."""

from __future__ import annotations

import pytest
from test_report import _assert_png, _state, _write_json

from whisperforge.errors import WhisperforgeError
from whisperforge.plots import plot_loss

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
