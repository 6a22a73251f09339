"""Config validation: a bad value is one line naming the key, before any job runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, copy_workflow, snakemake

from whisperforge.core.config import run_settings, validate_config
from whisperforge.core.errors import WhisperforgeError

SCHEMA = ROOT / "schemas/config.schema.yaml"


def load(*names: str) -> dict:
    config: dict = {}
    from whisperforge.core.config import deep_merge

    for name in names:
        config = deep_merge(config, yaml.safe_load((ROOT / name).read_text()))
    return config


@pytest.fixture
def config() -> dict:
    return load("config.yaml")


def test_shipped_configs_are_valid():
    validate_config(load("config.yaml"), SCHEMA)
    validate_config(load("config.yaml", "profiles/demo/demo.yaml"), SCHEMA)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"learning_rate": -0.1}}, r"^config train\.learning_rate: -0\.1 is less than"),
        (
            {"train": {"lora": {"target_modules": ["k_proj", "gate_proj"]}}},
            r"^config train\.lora\.target_modules\[1\]: 'gate_proj' is not one of",
        ),
        ({"eval": {"beam_size": 0}}, r"^config eval\.beam_size: 0 is less than the minimum"),
        ({"data": {"md5": "xyz"}}, r"^config data\.md5: 'xyz' does not match"),
        ({"train": {"lerning_rate": 1e-4}}, r"^config train: unknown key \('lerning_rate'"),
        (
            {"runs": {"big": {"learning_rate": 0}}},
            r"^config runs\.big\.learning_rate: 0 is less than or equal to the minimum",
        ),
        (
            {"model": {"base": "/no/such/whisper-dir"}},
            r"^config model\.base: /no/such/whisper-dir is not a Whisper model directory",
        ),
        (
            {"eval": {"sets": {"test": "demo/base_voice_set/manifest.jsonl"}}},
            r"^config eval\.sets: .*'test' should not be valid",
        ),
        (
            {"eval": {"sets": {"lectures": "no/such/lectures.jsonl"}}},
            r"^config eval\.sets\.lectures: no/such/lectures\.jsonl: manifest not found$",
        ),
        (
            {"export": {"quantizations": []}},
            r"^config export\.quantizations: \[\] should be non-empty",
        ),
        (
            {"export": {"quantizations": ["float16", "int4"]}},
            r"^config export\.quantizations\[1\]: 'int4' is not one of",
        ),
    ],
)
def test_bad_values_name_the_key_in_one_line(config, change, message):
    from whisperforge.core.config import deep_merge

    bad = deep_merge(config, change)
    with pytest.raises(WhisperforgeError, match=message) as err:
        validate_config(bad, SCHEMA)
    assert "\n" not in str(err.value)


def test_defaults_fill_missing_keys(config):
    del config["train"]["warmup_steps"]
    del config["eval"]["beam_size"]
    validate_config(config, SCHEMA)
    assert config["train"]["warmup_steps"] == 50
    assert config["eval"]["beam_size"] == 5


def test_run_settings_overlay_train_defaults(config):
    config["runs"] = {"a": {}, "b": {"learning_rate": 5e-4, "lora": {"r": 8}}}
    validate_config(config, SCHEMA)
    a, b = run_settings(config, "a"), run_settings(config, "b")
    assert a["learning_rate"] == 1e-3 and b["learning_rate"] == 5e-4
    assert b["lora"] == {**a["lora"], "r": 8}
    before = copy.deepcopy(config["train"])
    run_settings(config, "b")
    assert config["train"] == before, "a run's overlay must not leak into the defaults"


def test_snakemake_stops_before_any_job_on_a_bad_key(tmp_path: Path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"train": {"learning_rate": -1}}))
    proc = snakemake(
        workdir,
        "-n",
        "--workflow-profile",
        "profiles/demo",
        "--configfile",
        "config.yaml",
        "profiles/demo/demo.yaml",
        "bad.yaml",
        check=False,
    )
    assert proc.returncode != 0
    assert "config train.learning_rate: -1 is less than or equal to the minimum of 0" in (
        proc.stdout + proc.stderr
    )
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    ("export", "expected"),
    [
        ({"quantizations": ["float16", "int8"]}, ["float16", "int8"]),
        # The one-export form of earlier versions replaces the primary (it was the only export).
        ({"quantization": "int8"}, ["int8"]),
        ({"quantization": "int8", "quantizations": ["float16", "int8"]}, ["int8"]),
        ({"quantization": "int8", "quantizations": ["float16", "float32"]}, ["int8", "float32"]),
    ],
)
def test_quantizations_put_the_primary_first(config, export, expected):
    config["export"] = export
    validate_config(config, SCHEMA)
    assert config["export"]["quantizations"] == expected
    assert config["export"]["quantization"] == expected[0]
