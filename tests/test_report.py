"""Tests for whisperforge.report on hand-made inputs.

The fake results: base has CER 0.20 on dev and 0.25 on test; run "alpha" 0.0754 / 0.0943
(-62.3 % and -62.3 % vs base); run "beta" 0.30 / 0.10 (+50.0 %, -60.0 %).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from whisperforge.errors import WhisperforgeError
from whisperforge.report import summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NORM = "lowercase; remove punctuation"

CERS = {
    ("base", "dev"): 0.20,
    ("base", "test"): 0.25,
    ("alpha", "dev"): 0.0754,
    ("alpha", "test"): 0.0943,
    ("beta", "dev"): 0.30,
    ("beta", "test"): 0.10,
}
RUNS = {
    "alpha": {"learning_rate": 0.001, "lora": {"r": 32}, "metric_for_best": "loss"},
    "beta": {"learning_rate": 0.0005, "lora": {"r": 8}, "metric_for_best": "loss"},
}


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def _cer_json(model: str, split: str, cer: float) -> dict:
    # 1000 reference characters; edits split as sub : del : ins = 2 : 1 : 1 (rounded).
    edits = round(cer * 1000)
    sub, dele = edits // 2, edits // 4
    return {
        "cer": cer,
        "cer_raw": cer + 0.01,
        "substitutions": sub,
        "deletions": dele,
        "insertions": edits - sub - dele,
        "hits": 1000 - sub - dele,
        "ref_chars": 1000,
        "n_utts": 40 if split == "test" else 30,
        "empty_refs": 0,
        "audio_hours": 0.05,
        "normalization": NORM,
        "worst": [
            {"id": f"{model}-{split}-U1", "ref": "今天天气很好", "hyp": "今天天汽很", "cer": 2 / 6,
             "edits": 2},
            {"id": f"{model}-{split}-U2", "ref": "你好", "hyp": "你", "cer": 0.5, "edits": 1},
        ],
    }  # fmt: skip


def _state(run: str, log_history: list | None = None) -> dict:
    if log_history is None:
        log_history = [
            {"step": 10, "loss": 2.5, "epoch": 0.1},
            {"step": 20, "loss": 1.5, "epoch": 0.2},
            {"step": 20, "eval_loss": 1.2, "epoch": 0.2},
            {"step": 30, "loss": 0.9, "epoch": 0.3},
            {"step": 30, "eval_loss": 1.0, "epoch": 0.3},
            {"step": 30, "train_loss": 1.63, "train_runtime": 12.0},
        ]
    return {
        "log_history": log_history,
        "best_metric": 1.0,
        "best_model_checkpoint": f"results/checkpoints/{run}/checkpoint-30",
        "global_step": 30,
    }


@pytest.fixture
def inputs(tmp_path: Path):
    cer_files = {
        (m, s): _write_json(tmp_path / "eval" / m / s / "cer.json", _cer_json(m, s, c))
        for (m, s), c in CERS.items()
    }
    speed_files = {
        run: _write_json(
            tmp_path / "eval" / run / "speed.json",
            {
                "utterances": 20,
                "audio_s": 90.0,
                "hf": {"seconds": 30.0, "rtf": 0.3333, "device": "cuda"},
                "ct2": {"seconds": 7.5, "rtf": 0.0833, "device": "cuda", "compute_type": "float16"},
                "speedup": 4.0,
                "hf_texts_equal_ct2": True,
            },
        )
        for run in RUNS
    }
    states = {}
    for run in RUNS:
        adapter = tmp_path / "models" / run / "adapter"
        _write_json(adapter / "trainer_state.json", _state(run))
        states[run] = adapter
    return cer_files, speed_files, states


def _out(d: Path) -> dict[str, Path]:
    return {
        "summary_md": d / "summary.md",
        "table_tsv": d / "summary.tsv",
        "chart_png": d / "cer.png",
        "speed_tsv": d / "speed.tsv",
        "worst_tsv": d / "worst.tsv",
        "runs_yaml": d / "runs.yaml",
    }


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024


# --- summarize ----------------------------------------------------------------------------------


def test_summary_markdown_has_percentages_and_relative_change(inputs, tmp_path):
    out = _out(tmp_path / "out")
    summarize(*inputs, RUNS, out)
    md = out["summary_md"].read_text(encoding="utf-8")
    rows: dict[str, str] = {}  # first table only: model -> line
    for line in md.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)
    # Compact table: base 20.00 / 25.00; alpha (0.0754-0.20)/0.20 = -62.3 %, same on test.
    assert "20.00" in rows["base"] and "25.00" in rows["base"]
    assert "7.54 (-62.3 %)" in rows["alpha"] and "9.43 (-62.3 %)" in rows["alpha"]
    # beta: dev (0.30-0.20)/0.20 = +50.0 %, test (0.10-0.25)/0.25 = -60.0 %.
    assert "30.00 (+50.0 %)" in rows["beta"] and "10.00 (-60.0 %)" in rows["beta"]
    # Row order: base first, then runs alphabetically; splits dev before test.
    names = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert names[:4] == ["model", "base", "alpha", "beta"]
    assert md.index("dev CER %") < md.index("test CER %")
    # Detailed table: alpha/test has 94 edits -> 47 sub, 23 del, 24 ins, 40 utterances.
    detail = next(ln for ln in md.splitlines() if ln.startswith("| alpha ") and "| test " in ln)
    cells = [c.strip() for c in detail.strip("|").split("|")]
    assert cells[:4] == ["alpha", "test", "9.43", "-62.3 %"]
    assert cells[5:8] == ["47", "23", "24"] and cells[9] == "40"
    assert NORM in md
    # Speed and training sections.
    assert "4.00x" in md and "float16" in md and "cuda / cuda" in md
    assert "checkpoint-30" in md and "1.0000 (loss)" in md
    # The lines of each table have the same width (columns line up in a terminal).
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) == 4  # CER, edit counts, speed, training
    for t in tables:
        assert len({len(line) for line in t}) == 1, t


def test_summary_tsv_speed_worst_and_runs_parse(inputs, tmp_path):
    out = _out(tmp_path / "out")
    summarize(*inputs, RUNS, out)
    table = _read_tsv(out["table_tsv"])
    assert [(r["model"], r["split"]) for r in table] == [
        ("base", "dev"), ("base", "test"), ("alpha", "dev"), ("alpha", "test"),
        ("beta", "dev"), ("beta", "test"),
    ]  # fmt: skip
    by_key = {(r["model"], r["split"]): r for r in table}
    for key, cer in CERS.items():
        assert float(by_key[key]["cer"]) == pytest.approx(cer)
        assert float(by_key[key]["cer_pct"]) == pytest.approx(100 * cer, abs=0.005)
    assert by_key[("base", "test")]["rel_change_vs_base_pct"] == ""
    assert float(by_key[("beta", "dev")]["rel_change_vs_base_pct"]) == pytest.approx(50.0)
    assert int(by_key[("alpha", "test")]["substitutions"]) == 47

    speed = _read_tsv(out["speed_tsv"])
    assert [r["run"] for r in speed] == ["alpha", "beta"]
    assert float(speed[0]["speedup"]) == 4.0 and speed[0]["ct2_compute_type"] == "float16"
    assert speed[1]["hf_texts_equal_ct2"] == "true" and speed[1]["hf_device"] == "cuda"

    worst = _read_tsv(out["worst_tsv"])
    assert len(worst) == 6 * 2
    assert worst[0] == {
        "model": "base", "split": "dev", "id": "base-dev-U1", "ref": "今天天气很好",
        "hyp": "今天天汽很", "edits": "2", "cer": "0.3333",
    }  # fmt: skip

    assert yaml.safe_load(out["runs_yaml"].read_text(encoding="utf-8")) == RUNS


def test_summary_png_is_real_and_rerun_is_byte_identical(inputs, tmp_path):
    first, second = _out(tmp_path / "a"), _out(tmp_path / "b")
    summarize(*inputs, RUNS, first)
    summarize(*inputs, RUNS, second)
    _assert_png(first["chart_png"])
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key
    # Rerunning onto the same files leaves no temp files behind.
    summarize(*inputs, RUNS, first)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in first.values()
    )


def test_summary_order_does_not_depend_on_input_order(inputs, tmp_path):
    cer_files, speed_files, states = inputs
    reordered = dict(reversed(list(cer_files.items())))
    a, b = _out(tmp_path / "a"), _out(tmp_path / "b")
    summarize(cer_files, speed_files, states, RUNS, a)
    summarize(reordered, dict(reversed(list(speed_files.items()))), states, RUNS, b)
    assert a["summary_md"].read_bytes() == b["summary_md"].read_bytes()
    assert a["table_tsv"].read_bytes() == b["table_tsv"].read_bytes()


def test_summary_bad_cer_file_names_it(inputs, tmp_path):
    cer_files, speed_files, states = inputs
    bad = _write_json(tmp_path / "bad" / "cer.json", {"cer": 0.1})
    with pytest.raises(WhisperforgeError, match=r"bad/cer\.json.*lacks substitutions"):
        summarize({**cer_files, ("gamma", "test"): bad}, speed_files, states, RUNS, _out(tmp_path))
