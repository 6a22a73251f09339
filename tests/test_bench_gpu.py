"""benchmarks/bench_gpu.py on the CPU at a tiny shape, and what benchmarks/gpu_day.py sends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_day  # noqa: E402

TRAIN_KEYS = {
    "gpu",
    "torch",
    "cuda",
    "precision",
    "micro_batch",
    "checkpointing",
    "status",
    "s_per_step",
    "samples_per_s",
    "predicted_gib",
    "predicted_fixed_gib",
    "predicted_per_sample_gib",
    "peak_allocated_gib",
    "measured_over_predicted",
}


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench-gpu")
    command = [
        sys.executable,
        str(ROOT / "benchmarks/bench_gpu.py"),
        "--device",
        "cpu",
        "--shape",
        "tiny",
        "--d-model",
        "48",  # whisper-tiny's 4 + 4 layers and 6 heads, narrowed: a CPU step in seconds
        "--out",
        str(out),
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--micro-batches",
        "1",
        "--precisions",
        "fp32",
        "fp16",
        "--checkpointing",
        "on",
        "--train-utterances",
        "2",
        "--dev-utterances",
        "1",
        "--decode-utterances",
        "1",
        "--new-tokens",
        "4",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "bench_gpu.json").read_text()), (out / "bench_gpu.md").read_text()


def test_training_rows_name_the_machine_and_put_prediction_beside_measurement(cpu_run) -> None:
    result, _ = cpu_run
    rows = result["training"]
    assert [(r["precision"], r["micro_batch"]) for r in rows] == [("fp32", 1), ("fp16", 1)]
    for row in rows:
        assert row.keys() >= TRAIN_KEYS, TRAIN_KEYS - row.keys()
        assert row["gpu"].startswith("CPU") and row["cuda"] is None
    ok, fp16 = rows
    assert ok["status"] == "ok" and ok["steps_run"] == 2 and ok["steps_timed"] == 1
    assert ok["s_per_step"] > 0 and ok["samples_per_s"] == pytest.approx(
        1 / ok["s_per_step"], abs=0.006
    )
    # The memory model's prediction, made on the trained model (no preflight on a CPU with a
    # fixed micro-batch); the CUDA peak is n/a here.
    assert ok["predicted_gib"] > ok["predicted_fixed_gib"] > 0 and ok["label_tokens"] > 4
    assert ok["peak_allocated_gib"] is None and ok["measured_over_predicted"] is None
    assert fp16["status"] == "error" and "fp16 needs a CUDA device" in fp16["note"]
    assert result["machine"]["torch"] and result["parameters_m"] > 0


def test_forecast_from_the_nearest_measured_row(cpu_run) -> None:
    result, _ = cpu_run
    f = result["forecast"]
    assert f["utterances"] == 120_098 and f["epochs"] == 3
    assert f["optimizer_steps"] == 3 * -(-120_098 // 8)
    expected = 3 * 120_098 / result["training"][0]["samples_per_s"] / 3600
    assert f["train_hours"] == pytest.approx(expected, rel=0.01)
    assert f["total_hours"] >= f["train_hours"] and f["eval_hours"] is not None
    assert "micro-batch 8 not measured" in f["basis"] and "(fp32)" in f["config"]


def test_decoding_rows_and_markdown(cpu_run) -> None:
    result, md = cpu_run
    d = result["decoding"]
    assert d["status"] == "ok", d
    assert [(r["compute_type"], r["batch"]) for r in d["rows"]] == [
        ("float32", 8),
        ("float32", 1),
        ("int8", 8),
        ("int8", 1),
    ]
    assert all(r["tokens_per_utterance"] == 4 and r["rtf"] > 0 for r in d["rows"])
    assert all(r["peak_mib"] is None for r in d["rows"])  # CUDA-only
    header = "| GPU | torch | CUDA | precision | micro-batch | checkpointing | status | s/step |"
    assert header in md
    assert "predicted GiB | measured GiB | measured/predicted" in md
    assert "| fp16 | 1 | on | error |" in md and "## Forecast" in md and "**" in md
    assert "| float32 | 8 | ok |" in md and "n/a" in md


def test_prepared_payload_fits_the_device_limit() -> None:
    """Working tree (as the device tool sends it) + the wheel list, downloaded or not."""
    p = gpu_day.payload(with_ct2=False)
    assert set(p.wheels) >= {"datasets", "soundfile", "pandas", "jsonschema", "multiprocess"}
    assert p.tree_bytes > 0 and p.total_bytes == p.tree_bytes + p.wheel_bytes
    gpu_day.check_fits(p)  # raises over 64 MiB
    assert p.total_bytes <= 64 * 2**20


def test_over_the_limit_is_one_line() -> None:
    p = gpu_day.Payload(tree_bytes=30 * 2**20, wheels={"a": 2**20, "big": 40 * 2**20}, estimated=())
    with pytest.raises(gpu_day.PrepareError) as e:
        gpu_day.check_fits(p)
    message = str(e.value)
    assert "\n" not in message and "71.0 MiB, over the 64 MiB" in message and "big, 40.0" in message


def test_device_command_installs_offline_then_benches_into_out() -> None:
    command = gpu_day.device_command(450)
    assert len(command) <= gpu_day.COMMAND_LIMIT
    assert "pip install --no-index --find-links benchmarks/wheels" in command
    assert command.index("pip install") < command.index("benchmarks/bench_gpu.py --out $OUT")
    assert gpu_day.carry_paths() == ["benchmarks/wheels"]
    assert "benchmarks/wheels/" in (ROOT / ".gitignore").read_text().splitlines()
    specs = gpu_day.pinned(["datasets", "no-such-package-here"])
    assert specs[0].startswith("datasets==") and specs[1] == "no-such-package-here"


def test_tree_is_what_git_would_send(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "big.bin").write_bytes(b"x" * 1000)
    (tmp_path / "kept.txt").write_text("abc")
    names = sorted(p.name for p in gpu_day.tree_files(tmp_path))
    assert names == [".gitignore", "kept.txt"]
    assert gpu_day.tree_bytes(tmp_path) == len("ignored/\n") + 3
