"""Tests for whisperforge.report and whisperforge.provenance on hand-made inputs.

The fake results: base has CER 0.20 on dev and 0.25 on test; run "alpha" 0.0754 / 0.0943
(-62.3 % and -62.3 % vs base); run "beta" 0.30 / 0.10 (+50.0 %, -60.0 %).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import platform
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from whisperforge.errors import WhisperforgeError
from whisperforge.provenance import collect_provenance, write_provenance
from whisperforge.report import best_run, plot_loss, summarize

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


# --- best_run -----------------------------------------------------------------------------------


def test_best_run_picks_lowest_run_not_base(inputs, tmp_path):
    cer_files = inputs[0]
    assert best_run(cer_files, split="test") == "alpha"  # 0.0943 < 0.10; base not a candidate
    assert best_run(cer_files, split="dev") == "alpha"  # 0.0754 < 0.30
    # base lower than every run: still a run is returned.
    worse = {**cer_files, ("base", "test"): _write_json(
        tmp_path / "b" / "cer.json", _cer_json("base", "test", 0.01))}  # fmt: skip
    assert best_run(worse) == "alpha"


def test_best_run_tie_is_alphabetical(tmp_path):
    files = {
        (run, "test"): _write_json(tmp_path / run / "cer.json", _cer_json(run, "test", 0.1))
        for run in ("zeta", "eta", "theta")
    }
    assert best_run(files) == "eta"
    with pytest.raises(WhisperforgeError, match="split 'dev'"):
        best_run(files, split="dev")


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


# --- provenance ---------------------------------------------------------------------------------


@pytest.fixture
def model_dirs(tmp_path: Path):
    manifests = []
    for split in ("train", "dev", "test"):
        p = tmp_path / "manifests" / f"{split}.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"id": split, "sentence": "你好"}) + "\n", encoding="utf-8")
        manifests.append(p)
    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"\x00\x01weights" * 1000)
    hf = tmp_path / "merged"
    hf.mkdir()
    return hf, ct2, manifests


def _provenance(model_dirs, **kw):
    hf, ct2, manifests = model_dirs
    args = {
        "archive_md5": "2f494334227864a8a8fec932999db9d8",
        "base": "openai/whisper-large-v3-turbo",
        "revision": "41f01f3fe87f28c78e2fbf8b568835947dd65ed9",
        "settings": RUNS["alpha"],
        "export": {"quantization": "float16"},
        **kw,
    }
    return collect_provenance(hf, ct2, manifests, **args)


def test_provenance_hashes_settings_versions(model_dirs):
    _, ct2, manifests = model_dirs
    prov = _provenance(model_dirs)
    assert prov["data"]["manifests_sha256"] == {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in manifests
    }
    assert (
        prov["export"]["model_bin_sha256"]
        == hashlib.sha256((ct2 / "model.bin").read_bytes()).hexdigest()
    )
    assert prov["model"]["base"] == "openai/whisper-large-v3-turbo"
    assert prov["model"]["revision"] == "41f01f3fe87f28c78e2fbf8b568835947dd65ed9"
    assert prov["model"]["settings"] == RUNS["alpha"]
    assert prov["export"]["settings"] == {"quantization": "float16"}
    assert prov["data"]["archive_md5"] == "2f494334227864a8a8fec932999db9d8"
    assert set(prov["packages"]) >= {"torch", "transformers", "peft", "ctranslate2", "whisperforge"}
    assert prov["packages"]["jiwer"] == importlib.metadata.version("jiwer")
    assert prov["packages"]["snakemake"] == importlib.metadata.version("snakemake")
    assert prov["environment"]["python"] == platform.python_version()


def test_provenance_missing_package_is_null(model_dirs, monkeypatch):
    real = importlib.metadata.version

    def fake(name):
        if name == "peft":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", fake)
    prov = _provenance(model_dirs)
    assert prov["packages"]["peft"] is None
    assert prov["packages"]["jiwer"] == real("jiwer")


def test_provenance_has_no_hostname_and_is_stable(model_dirs, tmp_path):
    hf, ct2, manifests = model_dirs
    kw = {
        "archive_md5": None,
        "base": "tiny",
        "revision": None,
        "settings": {},
        "export": {"quantization": "int8"},
    }
    a, b = tmp_path / "a" / "provenance.json", tmp_path / "b" / "provenance.json"
    write_provenance(a, hf, ct2, manifests, **kw)
    write_provenance(b, hf, ct2, manifests, **kw)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert socket.gethostname() not in text
    assert platform.node() not in text
    assert json.loads(text)["model"]["settings"] == {}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_provenance_git_state(model_dirs, tmp_path):
    repo = tmp_path / "workflow"
    repo.mkdir()
    (repo / "Snakefile").write_text("rule all:\n", encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", "Snakefile")
    _git(repo, "commit", "-q", "-m", "init")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert _provenance(model_dirs, workflow_dir=repo)["workflow"] == {
        "commit": head,
        "dirty": False,
    }
    (repo / "results.txt").write_text("untracked output\n", encoding="utf-8")
    assert _provenance(model_dirs, workflow_dir=repo)["workflow"]["dirty"] is False
    (repo / "Snakefile").write_text("rule all:\n    input: []\n", encoding="utf-8")
    assert _provenance(model_dirs, workflow_dir=repo)["workflow"] == {"commit": head, "dirty": True}
    # Outside a git checkout: both null.
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert _provenance(model_dirs, workflow_dir=outside)["workflow"] == {
        "commit": None,
        "dirty": None,
    }


def test_provenance_missing_model_bin_names_it(model_dirs):
    ct2 = model_dirs[1]
    (ct2 / "model.bin").unlink()
    with pytest.raises(WhisperforgeError, match=r"model\.bin"):
        _provenance(model_dirs)
