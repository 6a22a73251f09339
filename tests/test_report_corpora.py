"""The summary's own-data sections: corpora, long-form on held-out recordings, learning curve."""

from __future__ import annotations

from whisperforge.evaluate.plots import plot_learning_curve
from whisperforge.report.corpora import (
    corpora_section,
    learning_curve_rows,
    longform_rows,
    longform_section,
)

STATS = {
    "kind": "recordings",
    "splits": {
        "train": {
            "recordings": 2,
            "speakers": 1,
            "cues": 30,
            "cues_kept": 24,
            "hours_in": 0.05,
            "hours_kept": 0.02,
            "windows": 15,
            "dropped": {"no words": 2, "longer than 5 s": 1},
        },
        "dev": {
            "recordings": 0,
            "speakers": 0,
            "cues": 0,
            "cues_kept": 0,
            "hours_in": 0.0,
            "hours_kept": 0.0,
            "windows": 0,
            "dropped": {},
        },
        "test": {
            "recordings": 1,
            "speakers": 1,
            "cues": 13,
            "cues_kept": 13,
            "hours_in": 0.02,
            "hours_kept": 0.01,
            "windows": 6,
            "dropped": {},
        },
    },
    "recordings": {
        "l2": {
            "split": "train",
            "cues": 15,
            "cues_kept": 10,
            "offset_s": -0.34,
            "rejected_srt": "results/manifests/corpora/lec/l2.rejected.srt",
        },
        "l3": {
            "split": "test",
            "cues": 13,
            "cues_kept": 13,
            "offset_s": 0.0,
            "rejected_srt": "results/manifests/corpora/lec/l3.rejected.srt",
        },
    },
}


def result(cer: float, loops: int = 0, start: float = 0.2) -> dict:
    return {
        "longform": {
            "cer": cer,
            "loops": {"count": loops},
            "long_deletions": {"count": 0},
            "no_reference": {"chars": 0},
            "start_error": {"median_s": start},
        },
        "conventions": {"share_meeting_all": 0.9},
    }


def test_corpora_section_shows_hours_in_and_kept_and_where_the_rejected_cues_are():
    text = corpora_section({"lec": STATS})
    assert "| lec" in text and "24/30" in text and "0.050" in text and "0.020" in text
    assert "longer than 5 s: 1" in text
    assert "l2.rejected.srt" in text and "-0.34 s" in text
    assert "l3.rejected.srt" not in text  # nothing dropped there
    assert "| dev" not in text  # an empty split has no row


def test_long_form_rows_flag_what_a_run_lost_against_base_and_feed_the_curve():
    longform = {
        ("base", "lec"): result(0.8),
        ("mine", "lec"): result(0.4, loops=2),
        ("aishell", "lec"): result(0.9),
    }
    rows = longform_rows(
        longform, ["base", "aishell", "mine"], {"base": 0.1, "aishell": 0.05, "mine": 0.06}
    )
    by_model = {r["model"]: r for r in rows}
    assert by_model["mine"]["worse_than_base"] == "loops.count"
    assert by_model["aishell"]["worse_than_base"] == "cer"
    assert by_model["base"]["worse_than_base"] == "" and by_model["mine"]["main_test_cer"] == 0.06
    assert "40.00" in longform_section(rows) and "loops.count" in longform_section(rows)
    curve = learning_curve_rows({"mine": {"lec": {"hours": 1.5}}, "aishell": {}}, rows)
    assert {(c["run"], c["hours"], c["longform_cer"]) for c in curve} == {
        ("mine", 1.5, 0.4),
        ("aishell", 0.0, 0.9),
    }


def test_the_learning_curve_is_drawn_with_or_without_points(tmp_path):
    curve = [
        {"run": "a", "corpus": "lec", "hours": 0.0, "longform_cer": 0.9},
        {"run": "b", "corpus": "lec", "hours": 2.0, "longform_cer": 0.4},
    ]
    plot_learning_curve(curve, tmp_path / "curve.png")
    plot_learning_curve([], tmp_path / "empty.png")
    for name in ("curve.png", "empty.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again.png"
    plot_learning_curve(curve, again)
    assert again.read_bytes() == (tmp_path / "curve.png").read_bytes()  # stable bytes


def test_an_hf_or_lhotse_corpus_shows_hours_utterances_speakers_and_skips_per_split():
    stats = {
        "kind": "hf",
        "utterances": {"train": 12, "dev": 0, "test": 4},
        "hours": {"train": 0.02, "dev": 0.0, "test": 0.005},
        "speakers": {"train": 3, "dev": 0, "test": 1},
        "skipped": {"train": {"empty_text": 2, "missing_audio": 1}, "dev": {}, "test": {}},
    }
    text = corpora_section({"cv": stats})
    train = next(line for line in text.splitlines() if line.startswith("| cv (hf) | train"))
    cells = [c.strip() for c in train.strip("|").split("|")]
    assert cells == [
        "cv (hf)",
        "train",
        "",
        "3",
        "",
        "0.020",
        "0.020",
        "12",
        "empty_text: 2, missing_audio: 1",
    ]
    assert "| cv (hf) | test" in text and "| cv (hf) | dev" not in text  # no dev split
