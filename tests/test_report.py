"""Tests for whisperforge.report.summary on hand-made inputs.

The fake results (primary export float16): base has CER 0.20 on dev and 0.25 on test; run "alpha"
0.0754 / 0.0943 (-62.3 % and -62.3 % vs base); run "beta" 0.30 / 0.10 (+50.0 %, -60.0 %), so beta
is worse than base on dev. The Whisper-Finetune CER of each is 0.005 higher.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from whisperforge.core.errors import WhisperforgeError
from whisperforge.report.summary import eval_key, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NORM = "lowercase; remove punctuation"
WF_NORM = "Whisper-Finetune: remove its list"
PRIMARY = "float16"

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
        "cer_whisper_finetune": cer + 0.005,
        "normalization_whisper_finetune": WF_NORM,
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


def _cer_path(root: Path, model: str, variant: str, set_: str) -> Path:
    """Where the evaluate rules put a cer.json: the primary export's without a variant folder."""
    variant_dir = [] if variant == PRIMARY else [f"ct2-{variant}"]
    return root.joinpath("eval", model, *variant_dir, set_, "cer.json")


def _cer_files(root: Path, cers: dict[tuple[str, str, str], float]) -> dict:
    """Write a fake cer.json per (model, variant, set) and key it as scripts/summarize.py does."""
    files = {}
    for (m, v, s), c in cers.items():
        path = _write_json(_cer_path(root, m, v, s), _cer_json(m, s, c))
        files[eval_key(path, PRIMARY)] = path
    return files


def _summarize(cer_files, speed_files, states, out, **kw) -> None:
    settings = {"variants": [PRIMARY], "max_cer_delta": 0.5, "fail_on_cer_delta": False}
    summarize(cer_files, speed_files, states, RUNS, out, **{**settings, **kw})


@pytest.fixture
def inputs(tmp_path: Path):
    cer_files = _cer_files(tmp_path, {(m, PRIMARY, s): c for (m, s), c in CERS.items()})
    speed_files = {
        run: _write_json(
            tmp_path / "eval" / run / "speed.json",
            {
                "utterances": 20,
                "audio_s": 90.0,
                "hf": {"seconds": 30.0, "rtf": 0.3333, "device": "cuda", "dtype": "float16"},
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
    _summarize(*inputs, out)
    md = out["summary_md"].read_text(encoding="utf-8")
    rows: dict[str, str] = {}  # first table only: model -> line
    for line in md.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)
    # Compact table (whisperforge norm.): base 20.00 / 25.00; alpha (0.0754-0.20)/0.20 = -62.3 %,
    # same on test.
    assert "20.00" in rows["base"] and "25.00" in rows["base"]
    assert "7.54 (-62.3 %)" in rows["alpha"] and "9.43 (-62.3 %)" in rows["alpha"]
    # beta: dev (0.30-0.20)/0.20 = +50.0 %, test (0.10-0.25)/0.25 = -60.0 %.
    assert "30.00 (+50.0 %)" in rows["beta"] and "10.00 (-60.0 %)" in rows["beta"]
    # Row order: base first, then runs alphabetically; splits dev before test.
    names = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert names[:4] == ["model", "base", "alpha", "beta"]
    assert md.index("dev CER %") < md.index("test CER %")
    # beta is worse than base on dev (30.00 vs 20.00), not on test; alpha nowhere.
    flags = [line for line in md.splitlines() if "⚠" in line]
    assert flags == ["- ⚠ beta is worse than base on dev: 30.00 % vs 20.00 %"]
    # Both normalizations, labelled; the second table shows the Whisper-Finetune CERs
    # (alpha dev 0.0754 + 0.005 -> 8.04, test 0.0943 + 0.005 -> 9.93).
    wf_at = md.index("## CER % (Whisper-Finetune norm., comparable to published AISHELL-1")
    assert md.index("## CER % (whisperforge norm.)") < wf_at
    assert "turbo zero-shot 8.65 %, LoRA 3.61 %" in md
    wf_alpha = next(ln for ln in md[wf_at:].splitlines() if ln.startswith("| alpha "))
    assert "9.93" in wf_alpha and "8.04" in wf_alpha and "9.43" not in wf_alpha
    # Detailed table: alpha/test has 94 edits -> 47 sub, 23 del, 24 ins, 40 utterances.
    detail = next(ln for ln in md.splitlines() if ln.startswith("| alpha ") and "| test " in ln)
    cells = [c.strip() for c in detail.strip("|").split("|")]
    assert cells[:6] == ["alpha", "float16", "test", "9.43", "-62.3 %", "9.93"]
    assert cells[7:10] == ["47", "23", "24"] and cells[11] == "40"
    assert NORM in md and WF_NORM in md
    # One variant: no variants section. Speed (the older speed.json: two unbatched engines)
    # and training sections.
    assert "Export variants" not in md
    assert "4.00x" in md and "float16" in md and "faster-whisper" in md
    assert "checkpoint-30" in md and "1.0000 (loss)" in md
    # The lines of each table have the same width (columns line up in a terminal).
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) == 5  # CER twice (both normalizations), edit counts, speed, training
    for t in tables:
        assert len({len(line) for line in t}) == 1, t


def test_summary_tsv_speed_worst_and_runs_parse(inputs, tmp_path):
    out = _out(tmp_path / "out")
    _summarize(*inputs, out)
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
    # The columns added at the end: variant, Whisper-Finetune CER, flags.
    assert list(table[0])[:14] == [
        "model", "split", "cer", "cer_pct", "rel_change_vs_base_pct", "cer_raw", "substitutions",
        "deletions", "insertions", "hits", "ref_chars", "n_utts", "empty_refs", "audio_hours",
    ]  # fmt: skip
    assert {r["variant"] for r in table} == {PRIMARY}
    assert float(by_key[("alpha", "test")]["cer_whisper_finetune"]) == pytest.approx(0.0993)
    assert by_key[("alpha", "test")]["cer_wf_pct"] == "9.93"
    assert [by_key[("beta", s)]["worse_than_base"] for s in ("dev", "test")] == ["true", "false"]
    assert by_key[("base", "dev")]["worse_than_base"] == ""
    assert {(r["cer_delta_vs_primary_pts"], r["cer_gate"]) for r in table} == {("", "")}

    # The older speed.json (hf, ct2): one unbatched row per engine.
    speed = _read_tsv(out["speed_tsv"])
    assert [(r["run"], r["engine"]) for r in speed] == [
        ("alpha", "transformers"), ("alpha", "faster-whisper"),
        ("beta", "transformers"), ("beta", "faster-whisper"),
    ]  # fmt: skip
    assert (speed[0]["seconds"], speed[0]["speedup"], speed[0]["batch_size"]) == ("30.00", "", "1")
    assert float(speed[1]["speedup"]) == 4.0 and speed[1]["compute_type"] == "float16"
    assert speed[1]["variant"] == PRIMARY and speed[1]["device"] == "cuda"

    worst = _read_tsv(out["worst_tsv"])
    assert len(worst) == 6 * 2
    assert worst[0] == {
        "model": "base", "split": "dev", "id": "base-dev-U1", "ref": "今天天气很好",
        "hyp": "今天天汽很", "edits": "2", "cer": "0.3333", "variant": PRIMARY,
    }  # fmt: skip

    assert yaml.safe_load(out["runs_yaml"].read_text(encoding="utf-8")) == RUNS


def test_summary_png_is_real_and_rerun_is_byte_identical(inputs, tmp_path):
    first, second = _out(tmp_path / "a"), _out(tmp_path / "b")
    _summarize(*inputs, first)
    _summarize(*inputs, second)
    _assert_png(first["chart_png"])
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key
    # Rerunning onto the same files leaves no temp files behind.
    _summarize(*inputs, first)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in first.values()
    )


def test_summary_order_does_not_depend_on_input_order(inputs, tmp_path):
    cer_files, speed_files, states = inputs
    reordered = dict(reversed(list(cer_files.items())))
    a, b = _out(tmp_path / "a"), _out(tmp_path / "b")
    _summarize(cer_files, speed_files, states, a)
    _summarize(reordered, dict(reversed(list(speed_files.items()))), states, b)
    assert a["summary_md"].read_bytes() == b["summary_md"].read_bytes()
    assert a["table_tsv"].read_bytes() == b["table_tsv"].read_bytes()


def test_summary_bad_cer_file_names_it(inputs, tmp_path):
    cer_files, speed_files, states = inputs
    bad = _write_json(tmp_path / "bad" / "cer.json", {"cer": 0.1})
    with pytest.raises(WhisperforgeError, match=r"bad/cer\.json.*lacks substitutions"):
        _summarize(
            {**cer_files, ("gamma", PRIMARY, "test"): bad}, speed_files, states, _out(tmp_path)
        )


# --- sets, variants, the CER gate, the newer speed.json ------------------------------------------

# An extra set "lectures" and an int8 variant of every model. alpha forgets: worse than base on
# lectures (12.30 vs 10.00; int8: 12.50 vs 10.10). int8 vs float16 in points: base +0.20 dev,
# +0.50 test (exactly the limit: passes), +0.10 lectures; alpha +0.06 dev, +0.70 test (over 0.5),
# +0.20 lectures.
VARIANT_CERS = {
    ("base", "float16", "dev"): 0.20, ("base", "float16", "test"): 0.25,
    ("base", "float16", "lectures"): 0.10,
    ("base", "int8", "dev"): 0.202, ("base", "int8", "test"): 0.255,
    ("base", "int8", "lectures"): 0.101,
    ("alpha", "float16", "dev"): 0.0754, ("alpha", "float16", "test"): 0.0943,
    ("alpha", "float16", "lectures"): 0.123,
    ("alpha", "int8", "dev"): 0.076, ("alpha", "int8", "test"): 0.1013,
    ("alpha", "int8", "lectures"): 0.125,
}  # fmt: skip
SETS = ["dev", "test", "lectures"]
VARIANTS = [PRIMARY, "int8"]
ENGINE_SPEED = {
    "utterances": 20, "audio_s": 90.0, "beam_size": 5, "batch_size": 8, "device": "cpu",
    "engines": [
        {"engine": "transformers", "variant": "float32", "compute_type": "float32",
         "batch_size": 8, "seconds": 30.0, "rtf": 0.3333, "speedup": 1.0,
         "peak_memory_mb": 2048.4, "memory": "rss"},
        {"engine": "faster-whisper", "variant": "float16", "compute_type": "float32",
         "batch_size": 8, "seconds": 9.0, "rtf": 0.1, "speedup": 3.3333,
         "peak_memory_mb": 1024.0, "memory": "rss"},
        {"engine": "faster-whisper", "variant": "int8", "compute_type": "int8",
         "batch_size": 8, "seconds": 6.0, "rtf": 0.0667, "speedup": 5.0,
         "peak_memory_mb": 512.0, "memory": "rss"},
        {"engine": "faster-whisper", "variant": "int8", "compute_type": "int8",
         "batch_size": 1, "seconds": 12.0, "rtf": 0.1333, "speedup": 2.5,
         "peak_memory_mb": 400.0, "memory": "rss"},
    ],
    "speedup": 3.3333,
    "hf_texts_equal_ct2": 19,
}  # fmt: skip


@pytest.fixture
def variant_inputs(tmp_path: Path):
    cer_files = _cer_files(tmp_path, VARIANT_CERS)
    speed = {"alpha": _write_json(tmp_path / "eval" / "alpha" / "speed.json", ENGINE_SPEED)}
    adapter = tmp_path / "models" / "alpha" / "adapter"
    _write_json(adapter / "trainer_state.json", _state("alpha"))
    return cer_files, speed, {"alpha": adapter}


def test_eval_key_reads_model_variant_and_set_from_the_path():
    assert eval_key("results/eval/alpha/test/cer.json", "float16") == ("alpha", "float16", "test")
    assert eval_key("results/eval/alpha/ct2-int8/lectures/cer.json", "float16") == (
        "alpha", "int8", "lectures",
    )  # fmt: skip
    # A run whose name starts with ct2- is still a model, not a variant.
    assert eval_key("results/eval/ct2-x/dev/cer.json", "float16") == ("ct2-x", "float16", "dev")
    with pytest.raises(WhisperforgeError, match=r"alpha/cer\.json: not an evaluation path"):
        eval_key("results/alpha/cer.json", "float16")


def test_summary_rows_for_every_model_variant_and_set(variant_inputs, tmp_path):
    out = _out(tmp_path / "out")
    _summarize(*variant_inputs, out, variants=VARIANTS, sets=SETS)
    table = _read_tsv(out["table_tsv"])
    assert [(r["model"], r["variant"], r["split"]) for r in table] == [
        (m, v, s) for m in ("base", "alpha") for v in VARIANTS for s in SETS
    ]
    by_key = {(r["model"], r["variant"], r["split"]): r for r in table}
    # Relative change vs base of the same variant: alpha int8 lectures (0.125-0.101)/0.101.
    assert float(by_key[("alpha", "int8", "lectures")]["rel_change_vs_base_pct"]) == 23.8
    # Worse than base (same variant): only on lectures, for both variants.
    worse = {k for k, r in by_key.items() if r["worse_than_base"] == "true"}
    assert worse == {("alpha", "float16", "lectures"), ("alpha", "int8", "lectures")}
    # The gate: points vs float16, same model and set; 0.50 is not over 0.5, 0.70 is.
    gate = {k: (r["cer_delta_vs_primary_pts"], r["cer_gate"]) for k, r in by_key.items()}
    assert gate[("base", "int8", "test")] == ("0.50", "pass")
    assert gate[("alpha", "int8", "test")] == ("0.70", "fail")
    assert gate[("alpha", "int8", "dev")] == ("0.06", "pass")
    assert gate[("alpha", "float16", "test")] == ("", "")
    assert [r["cer_gate"] for r in table].count("fail") == 1
    worst = _read_tsv(out["worst_tsv"])
    assert len(worst) == 12 * 2 and worst[-1]["variant"] == "int8"
    _assert_png(out["chart_png"])

    md = out["summary_md"].read_text(encoding="utf-8")
    flags = [line for line in md.splitlines() if "⚠" in line and line.startswith("- ")]
    assert flags == [
        "- ⚠ alpha is worse than base on lectures: 12.30 % vs 10.00 %",
        "- ⚠ alpha (int8) is worse than base (int8) on lectures: 12.50 % vs 10.10 %",
        "- ⚠ alpha's int8 export has CER 10.13 % on test, +0.70 points vs float16 (9.43 %), "
        "over eval.max_cer_delta 0.5",
    ]
    # Compact table columns: the extra set after the splits.
    assert md.index("dev CER %") < md.index("test CER %") < md.index("lectures CER %")
    # Variants table: int8's CER with its delta and gate beside its batched speed (batch 8 of
    # the speed file, not the unbatched row).
    section = md[md.index("## Export variants") : md.index("## Decoding speed")]
    alpha_int8 = next(ln for ln in section.splitlines() if ln.startswith("| alpha | int8 "))
    cells = [c.strip() for c in alpha_int8.strip("|").split("|")]
    assert cells[2:] == [
        "7.60 (+0.06, ok)", "10.13 (+0.70, over the gate ⚠)", "12.50 (+0.20, ok)",
        "8", "6.00", "0.0667", "5.00x",
    ]  # fmt: skip
    base_int8 = next(ln for ln in section.splitlines() if ln.startswith("| base  | int8 "))
    cells = [c.strip() for c in base_int8.strip("|").split("|")]
    assert cells[3] == "25.50 (+0.50, ok)" and cells[-4:] == ["–"] * 4  # base: no speed step


def test_cer_gate_fails_the_summary_before_writing_anything(variant_inputs, tmp_path):
    out = _out(tmp_path / "out")
    with pytest.raises(
        WhisperforgeError,
        match=r"^CER gate: alpha's int8 export has CER 10\.13 % on test, \+0\.70 points vs "
        r"float16 \(9\.43 %\), over eval\.max_cer_delta 0\.5; ",
    ) as err:
        _summarize(*variant_inputs, out, variants=VARIANTS, fail_on_cer_delta=True)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
    # A looser limit lets the same results through, unflagged.
    _summarize(*variant_inputs, out, variants=VARIANTS, fail_on_cer_delta=True, max_cer_delta=1.0)
    table = _read_tsv(out["table_tsv"])
    assert "fail" not in {r["cer_gate"] for r in table}
    assert "over the gate" not in out["summary_md"].read_text(encoding="utf-8")


def test_speed_rows_per_engine_variant_and_batch(variant_inputs, tmp_path):
    out = _out(tmp_path / "out")
    _summarize(*variant_inputs, out, variants=VARIANTS)
    speed = _read_tsv(out["speed_tsv"])
    assert [(r["engine"], r["variant"], r["batch_size"]) for r in speed] == [
        ("transformers", "float32", "8"), ("faster-whisper", "float16", "8"),
        ("faster-whisper", "int8", "8"), ("faster-whisper", "int8", "1"),
    ]  # fmt: skip
    assert speed[1] == {
        "run": "alpha", "engine": "faster-whisper", "variant": "float16", "batch_size": "8",
        "compute_type": "float32", "device": "cpu", "seconds": "9.00", "rtf": "0.1000",
        "speedup": "3.33", "peak_memory_mb": "1024", "memory": "rss", "utterances": "20",
        "audio_s": "90.00", "beam_size": "5",
    }  # fmt: skip
    md = out["summary_md"].read_text(encoding="utf-8")
    assert "alpha: the primary export in faster-whisper is 3.33x transformers, both batched " in md
    assert "90.0 s of audio; 19 of them with the same text as transformers)" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| alpha | transformers "))
    assert "2048 (rss)" in row and "1.00x" in row


def test_a_speed_file_of_one_clip_is_said_unbatched(variant_inputs, tmp_path):
    cer_files, speeds, *rest = variant_inputs
    one = {**ENGINE_SPEED, "utterances": 1, "batch_size": 1}
    one["engines"] = [{**e, "batch_size": 1} for e in ENGINE_SPEED["engines"][:2]]
    _write_json(speeds["alpha"], one)
    out = _out(tmp_path / "out")
    _summarize(cer_files, speeds, *rest, out, variants=VARIANTS)
    md = out["summary_md"].read_text(encoding="utf-8")
    assert "is 3.33x transformers, both unbatched with beam 5" in md
    assert "batched at" not in md


def test_speed_file_with_bad_engines_is_named(variant_inputs, tmp_path):
    cer_files, _, states = variant_inputs
    bad = _write_json(tmp_path / "bad" / "speed.json", {**ENGINE_SPEED, "engines": [{"x": 1}]})
    with pytest.raises(WhisperforgeError, match=r"bad/speed\.json: .*engines\[0\] lacks engine"):
        _summarize(cer_files, {"alpha": bad}, states, _out(tmp_path / "out"), variants=VARIANTS)


def test_cer_file_without_whisper_finetune_scores_reads_as_not_available(inputs, tmp_path):
    cer_files, speed_files, states = inputs
    old = _cer_json("alpha", "test", 0.0943)
    del old["cer_whisper_finetune"], old["normalization_whisper_finetune"]
    _write_json(cer_files[("alpha", PRIMARY, "test")], old)
    out = _out(tmp_path / "out")
    _summarize(cer_files, speed_files, states, out)
    by_key = {(r["model"], r["split"]): r for r in _read_tsv(out["table_tsv"])}
    assert by_key[("alpha", "test")]["cer_whisper_finetune"] == ""
    md = out["summary_md"].read_text(encoding="utf-8")
    wf_alpha = next(
        ln for ln in md[md.index("Whisper-Finetune norm.,") :].splitlines()
        if ln.startswith("| alpha ")
    )  # fmt: skip
    assert wf_alpha.rstrip(" |").endswith("n/a")
    assert "alpha/float16/test: not recorded" in md


# --- forgetting (eval.general) ------------------------------------------------------------------


def test_a_run_over_the_forgetting_budget_is_flagged_beside_its_gain_and_plotted(inputs, tmp_path):
    # The general set is dev: alpha gains there (-12.46 points), beta loses 10 points.
    cer_files, speed_files, states = inputs
    _write_json(
        states["beta"] / "training_summary.json",
        {"forgetting_guard": {"general_set": "dev", "budget_pts": 2.0, "within_budget": False,
                              "best_forgetting_pts": 9.5}},
    )  # fmt: skip
    out = {**_out(tmp_path / "out"), "forgetting_png": tmp_path / "out" / "forgetting.png"}
    _summarize(cer_files, speed_files, states, out, general="dev", max_forgetting=2.0)
    md = out["summary_md"].read_text(encoding="utf-8")
    flag = (
        "⚠ beta forgot general speech (dev): CER 30.00 % vs base 20.00 %, +10.00 points, "
        "over eval.max_forgetting 2"
    )
    assert flag in md and "alpha forgot" not in md
    assert md.index(flag) < md.index("## CER % (Whisper-Finetune")  # with the flags at the top
    assert "| beta | test | 10.00 | +15.00 | dev | 30.00 | +10.00 | no ⚠ |" in md
    assert "| alpha | test | 9.43 | +15.57 | dev | 7.54 | -12.46 | yes |" in md
    assert "⚠ beta: no checkpoint was within 2 points on dev" in md
    _assert_png(out["forgetting_png"])

    # A larger budget: nothing flagged; no general set: no section at all.
    _summarize(cer_files, speed_files, states, out, general="dev", max_forgetting=10.0)
    assert "forgot general speech" not in out["summary_md"].read_text(encoding="utf-8")
    _summarize(cer_files, speed_files, states, out)
    assert "## Forgetting" not in out["summary_md"].read_text(encoding="utf-8")
