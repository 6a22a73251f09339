"""End to end: the real rules on the shipped demo data, offline, on the CPU.

One module-scoped run builds the whole DAG (the shipped faster-whisper base imported -> two
LoRA runs -> merged -> CT2 -> eval -> summary), the main run trained as the demo profile trains
it; the tests then inspect what it built and what `snakemake -n` would redo after each kind of
change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers import copy_workflow, jobs_planned, snakemake

pytestmark = pytest.mark.e2e

FAST = {
    # The runs are the demo profile's own: `lora` (the shipped base, LoRA 120 steps) and `lectures`
    # (the same on AISHELL mixed with the lectures). With a 300-step base and 60-120 LoRA steps,
    # whether LoRA beat the base by 20 % depended on the seed (train CER ratio 0.36-0.91); with
    # the demo's settings it was 0.37-0.65 (3 seeds). One clip times each engine (unbatched).
    "eval": {"speed_utterances": 1},
}
CONFIGS = ["config.yaml", "profiles/demo/demo.yaml", "fast.yaml"]
RUNS = ["lectures", "lora"]  # `lectures`: the demo profile's mix of AISHELL and lectures
QUANTIZATIONS = ["float16", "int8"]  # the demo profile's export.quantizations
SETS = ["train", "test", "base_voice", "lectures"]  # eval.splits, eval.sets, the corpus's test


def demo_args(*extra_configs: str) -> list[str]:
    return ["--workflow-profile", "profiles/demo", "--configfile", *CONFIGS, *extra_configs]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    if os.environ.get("REUSE"):
        return Path(os.environ["REUSE"])
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    (workdir / "fast.yaml").write_text(yaml.safe_dump(FAST))
    # On every core, as the README's demo command (`--cores all`): torch's and CTranslate2's
    # results depend on their thread count, and the tiny model's training amplifies that (on one
    # thread the held-out lecture's long-form CER of base was 75 %, on two 44 %).
    snakemake(workdir, *demo_args(), cores=os.cpu_count())
    return workdir


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def overlay(workdir: Path, name: str, content: dict) -> str:
    (workdir / name).write_text(yaml.safe_dump(content))
    return name


def test_demo_dag_builds_every_artifact(demo):
    for run in RUNS:
        adapter = demo / "results/models" / run / "adapter"
        assert (adapter / "checkpoint-best/adapter_config.json").is_file()
        assert (adapter / "checkpoint-final/adapter_model.safetensors").is_file()
        assert (adapter / "trainer_state.json").is_file()
        assert (demo / "results/models" / run / "loss.png").stat().st_size > 1000
        assert (demo / "results/models" / run / "merged/model.safetensors").is_file()
    for model in ["base", *RUNS]:
        ct2 = demo / "results/models" / model / "ct2-float16"
        for name in ("model.bin", "tokenizer.json", "preprocessor_config.json"):
            assert (ct2 / name).is_file(), f"{ct2}/{name} missing"
        provenance = json.loads((demo / "results/models" / model / "provenance.json").read_text())
        mixed = {f"results/manifests/runs/{model}/{s}.jsonl" for s in ("train", "dev")}
        assert set(provenance["data"]["manifests_sha256"]) == {
            f"results/manifests/{split}.jsonl" for split in ("train", "dev", "test")
        } | (mixed if model == "lectures" else set())
        assert provenance["data"]["archive_md5"] == "5b906130667ff8e085ed82802b2fcaf6"
    assert "lora" in (demo / "results/summary.md").read_text()


def test_the_shipped_base_is_imported_exactly(demo):
    # The DAG's own float16 export of the imported base holds the shipped model.bin's bytes
    # (model/ct2import.py: fp16 weights upcast exactly, re-exported to the same variables).
    exported = demo / "results/models/base/ct2-float16/model.bin"
    assert exported.read_bytes() == (demo / "demo/base_model/model.bin").read_bytes()


def test_manifests_match_the_archive_and_sox(demo):
    stats = json.loads((demo / "results/manifests/stats.json").read_text())
    for split in ("train", "dev", "test"):
        records = read_jsonl(demo / f"results/manifests/{split}.jsonl")
        assert len(records) == stats["utterances"][split] > 0
        for record in records[:5]:
            assert " " not in record["sentence"]
            assert record["language"] == "Chinese"
            soxi = subprocess.run(
                ["soxi", "-D", str(demo / record["audio"]["path"])],
                capture_output=True,
                text=True,
                check=True,
            )
            assert record["duration"] == pytest.approx(float(soxi.stdout), abs=0.006)
    assert stats["skipped"]["no_transcript"] == 2  # the demo archive's two orphan wavs


def train_losses(state_json: Path) -> list[float]:
    return [e["loss"] for e in json.loads(state_json.read_text())["log_history"] if "loss" in e]


def test_training_loss_goes_down(demo):
    # LoRA starts from a base that already knows the sentences (first logged loss ~0.2);
    # adapting to the new voices must still cut it by a clear margin (measured: to 0.17-0.30x).
    losses = train_losses(demo / "results/models/lora/adapter/trainer_state.json")
    assert len(losses) >= 6 and losses[-1] < 0.6 * losses[0], losses


def test_finetuned_model_beats_base_on_demo_train_split(demo):
    # The demo's main run (r 16).
    base = json.loads((demo / "results/eval/base/train/cer.json").read_text())["cer"]
    tuned = json.loads((demo / "results/eval/lora/train/cer.json").read_text())["cer"]
    assert tuned < 0.8 * base, (tuned, base)


def test_hypotheses_one_line_per_test_utterance(demo):
    manifest = read_jsonl(demo / "results/manifests/test.jsonl")
    for model in ["base", *RUNS]:
        hyps = read_jsonl(demo / f"results/eval/{model}/test/hyp.jsonl")
        assert [h["id"] for h in hyps] == [m["id"] for m in manifest]
        assert all(h["ref"] == m["sentence"] for h, m in zip(hyps, manifest, strict=True))


def test_merged_model_equals_base_plus_adapter(demo):
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    base_dir = demo / "results/models/base/hf"
    run_dir = demo / "results/models/lora"
    merged = WhisperForConditionalGeneration.from_pretrained(run_dir / "merged").eval()
    adapted = PeftModel.from_pretrained(
        WhisperForConditionalGeneration.from_pretrained(base_dir),
        run_dir / "adapter/checkpoint-best",
    ).eval()
    plain = WhisperForConditionalGeneration.from_pretrained(base_dir).eval()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(0))
    decoder_ids = torch.tensor([[50258, 50260, 50360, 50364]] * 2)
    with torch.no_grad():
        a = merged(input_features=features, decoder_input_ids=decoder_ids).logits
        b = adapted(input_features=features, decoder_input_ids=decoder_ids).logits
        c = plain(input_features=features, decoder_input_ids=decoder_ids).logits
    assert torch.allclose(a, b, atol=1e-3), (a - b).abs().max()
    assert not torch.allclose(a, c, atol=1e-3), "the adapter changed nothing"


def test_ct2_export_transcribes_like_the_merged_model(demo):
    """Same weights, same greedy decoding: the export must not change a single transcript.

    The two engines differ in one documented way: faster-whisper pads the log-mel of a short
    clip with zeros past the audio (as openai-whisper does), while the transformers feature
    extractor pads the audio, i.e. with the log-mel of silence. A large Whisper does not care;
    the tiny demo model, trained on the latter, can. So the merged model gets the features
    padded the faster-whisper way, and then the transcripts must be equal.
    """
    from faster_whisper import WhisperModel
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from whisperforge.core.audio import audio_frames
    from whisperforge.core.audio import read_training_audio as load_audio

    run_dir = demo / "results/models/lora"
    processor = WhisperProcessor.from_pretrained(run_dir / "merged")
    hf = WhisperForConditionalGeneration.from_pretrained(run_dir / "merged").eval()
    ct2 = WhisperModel(str(run_dir / "ct2-float16"), device="cpu", compute_type="default")
    for record in read_jsonl(demo / "results/manifests/train.jsonl")[:6]:
        audio = load_audio(demo / record["audio"]["path"])
        features = processor.feature_extractor(
            audio, sampling_rate=16000, return_tensors="pt"
        ).input_features
        # faster-whisper's padding, see the docstring
        features[:, :, audio_frames(len(audio)) :] = 0.0
        with torch.no_grad():
            ids = hf.generate(
                features, language="zh", task="transcribe", num_beams=1, max_new_tokens=60
            )
        hf_text = processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
        segments, _ = ct2.transcribe(
            audio,
            language="zh",
            beam_size=1,
            without_timestamps=True,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        assert "".join(s.text for s in segments).strip() == hf_text, record["id"]


def test_nothing_to_do_after_a_complete_run(demo):
    assert jobs_planned(demo, *demo_args()) == {}


def test_eval_param_change_reruns_only_evaluation(demo):
    beam = overlay(demo, "beam.yaml", {"eval": {"beam_size": 2}})
    planned = jobs_planned(demo, *demo_args(beam))
    assert planned, "a new beam size must rerun something"
    evaluation = {"transcribe", "transcribe_variant", "score", "score_variant", "speed"}
    # hub folders carry the CER in their model cards
    assert set(planned) <= evaluation | {"summarize", "hub_folder", "all"}, planned


def planned_after_editing(demo: Path, module: str) -> dict[str, int]:
    """The jobs a dry run plans once `module` (a path in the workflow) is edited; then undone."""
    path = demo / module
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "\n# an edit\n", encoding="utf-8")
    try:
        return jobs_planned(demo, *demo_args())
    finally:
        path.write_text(text, encoding="utf-8")


def test_a_cer_edit_rescores_and_retrains_only_the_runs_that_compute_a_cer(demo):
    planned = planned_after_editing(demo, "whisperforge/metrics/cer.py")
    assert planned.get("score"), planned  # every model is scored again
    # The demo's runs are guarded (eval.general): their checkpoint-best is chosen by a CER.
    assert planned.get("finetune") == len(RUNS), planned
    assert "import_base_model" not in planned, planned


def test_a_decoder_edit_reruns_decoding_and_no_export(demo):
    planned = planned_after_editing(demo, "whisperforge/decode/transcribe.py")
    assert planned.get("transcribe") and planned.get("speed"), planned
    for rule in ("export_ct2", "merge", "finetune", "import_base_model"):
        assert rule not in planned, planned


@pytest.fixture(scope="module")
def demo_rules(demo) -> set[str]:
    """The rules of the demo's DAG (its jobs, all forced)."""
    return set(jobs_planned(demo, *demo_args(), "--forceall"))


@pytest.mark.parametrize(
    "module",
    [
        "whisperforge/metrics/score.py",
        "whisperforge/model/merge.py",
        "whisperforge/data/recordings.py",
        "whisperforge/core/errors.py",
    ],
)
def test_an_edit_reruns_what_the_readme_table_says_and_what_reads_it(demo, demo_rules, module):
    """The README's table (tools/reruns.py) against Snakemake: editing `module` plans the same
    jobs as forcing the rules the table names (the demo's runs all compute a CER: guarded)."""
    from whisperforge.tools.reruns import rerun_table

    rules = [rule.split(" (")[0] for rule in rerun_table(demo)[module]]
    forced = [rule for rule in rules if rule in demo_rules]  # `push` is only built when asked
    forcing = ["--forcerun", *forced] if forced else []
    assert planned_after_editing(demo, module) == jobs_planned(demo, *demo_args(), *forcing)


def test_lora_param_change_reruns_that_run_only(demo):
    change = overlay(demo, "lora.yaml", {"runs": {"lora": {"lora": {"r": 4}}}})
    proc = snakemake(demo, "-n", *demo_args(change))
    planned = jobs_planned(demo, *demo_args(change))
    assert planned.get("finetune") == 1 and planned.get("merge") == 1, planned
    assert planned.get("export_ct2") == len(QUANTIZATIONS), planned
    for rule in ("extract_aishell", "build_manifests", "import_base_model"):
        assert rule not in planned, planned
    assert "run=lora\n" in proc.stdout + "\n" or "run=lora," in proc.stdout
    assert "run=lectures" not in proc.stdout  # the other run, on the same train settings


def test_data_archive_change_reruns_everything_downstream(demo):
    change = overlay(demo, "archive.yaml", {"data": {"md5": "0" * 32}})
    planned = jobs_planned(demo, *demo_args(change))
    assert planned.get("extract_aishell") == 1 and planned.get("build_manifests") == 1
    assert planned.get("finetune") == len(RUNS) and planned.get("summarize") == 1
    assert "import_base_model" not in planned  # the base model did not change


def test_training_code_change_reruns_training_and_downstream(demo):
    train_py = demo / "whisperforge/train/finetune.py"
    original = train_py.read_text()
    try:
        train_py.write_text(original + "\n# a change to the training code\n")
        planned = jobs_planned(demo, *demo_args())
    finally:
        train_py.write_text(original)
    # Snakemake's code trigger sees only the step script, so the rules also take a digest of
    # the stage modules they run as a param: editing train.py reruns every training job.
    assert planned.get("finetune") == len(RUNS), planned
    assert "import_base_model" not in planned, planned  # no training code in the import
    assert "extract_aishell" not in planned and "build_manifests" not in planned


def test_report_html_has_cer_table_and_plots(demo):
    snakemake(demo, *demo_args(), "--report", "results/report.html")
    html = (demo / "results/report.html").read_text(errors="replace")
    for needle in ("summary.md", "cer.png", "loss.png", "CER", "speed.tsv"):
        assert needle in html, needle


def test_subtitles_of_a_long_recording_read_like_evaluation(demo, tmp_path):
    """A lecture of every train utterance joined by 1-3 s pauses: one cue per utterance at the
    right times, and a CER at most 0.15 above decoding the same utterances one by one."""
    from test_subtitles import check_lecture_cer

    check_lecture_cer(demo / "results/models/lora/ct2-float16", demo, tmp_path)


def test_every_model_is_scored_on_the_extra_set_and_the_int8_variant_under_its_gate(demo):
    import csv

    for model in ["base", *RUNS]:
        for name in SETS:
            for folder in (f"{model}/{name}", f"{model}/ct2-int8/{name}"):
                cer = json.loads((demo / f"results/eval/{folder}/cer.json").read_text())
                assert cer["n_utts"] > 0 and cer["cer_whisper_finetune"] is not None, folder
    extra = read_jsonl(demo / "results/eval/lora/base_voice/hyp.jsonl")
    assert [h["ref"] for h in extra] == [
        r["sentence"] for r in read_jsonl(demo / "demo/base_voice_set/manifest.jsonl")
    ]
    with (demo / "results/summary.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    keys = {(r["model"], r["variant"], r["split"]) for r in rows}
    assert keys == {(m, q, s) for m in ["base", *RUNS] for q in QUANTIZATIONS for s in SETS}
    for row in rows:
        primary = next(
            r
            for r in rows
            if (r["model"], r["variant"], r["split"]) == (row["model"], "float16", row["split"])
        )
        if row["variant"] == "int8":
            delta = 100 * (float(row["cer"]) - float(primary["cer"]))
            assert float(row["cer_delta_vs_primary_pts"]) == pytest.approx(delta, abs=0.01)
            assert row["cer_gate"] == ("fail" if delta > 0.5 + 1e-9 else "pass"), row
    summary = (demo / "results/summary.md").read_text()
    for needle in ("Whisper-Finetune norm.", "base_voice", "int8"):
        assert needle in summary, needle


def test_every_run_has_hub_folders_whose_cards_carry_its_cer(demo):
    from huggingface_hub import ModelCard

    for run in RUNS:
        for artifact, model_dir, library in [
            ("transformers", f"results/models/{run}/merged", "transformers"),
            *[(f"ct2-{q}", f"results/models/{run}/ct2-{q}", "ctranslate2") for q in QUANTIZATIONS],
        ]:
            folder = demo / "results/hub" / run / artifact
            card = ModelCard.load(folder / "README.md")
            assert card.data.library_name == library
            assert card.data.pipeline_tag == "automatic-speech-recognition"
            quantization = "float16" if artifact == "transformers" else artifact[4:]
            variant = "" if quantization == "float16" else f"ct2-{quantization}/"
            wanted = {
                name: round(
                    100
                    * json.loads(
                        (demo / f"results/eval/{run}/{variant}{name}/cer.json").read_text()
                    )["cer"],
                    2,
                )
                for name in SETS
            }
            found = {
                r.dataset_split or r.dataset_name: r.metric_value
                for r in card.data.eval_results
                if r.metric_config != "whisper-finetune"
            }
            assert found == wanted, (artifact, found, wanted)
            weights = "model.bin" if library == "ctranslate2" else "model.safetensors"
            assert (folder / weights).stat().st_ino == (demo / model_dir / weights).stat().st_ino


def test_training_writes_tensorboard_events_with_a_falling_loss(demo):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = demo / "results/models/lora/tensorboard"
    events = EventAccumulator(str(logdir)).Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "eval/loss"} <= set(tags), tags
    losses = [e.value for e in events.Scalars("train/loss")]
    assert len(losses) >= 6 and losses[-1] < 0.6 * losses[0], losses


def test_the_prepared_corpus_loads_back_with_datasets(demo):
    from datasets import load_from_disk

    corpus = load_from_disk(str(demo / "results/manifests/hf"))
    for split in ("train", "dev", "test"):
        records = read_jsonl(demo / f"results/manifests/{split}.jsonl")
        assert corpus[split]["sentence"] == [r["sentence"] for r in records]
    first = read_jsonl(demo / "results/manifests/test.jsonl")[0]
    audio = corpus["test"][0]["audio"]
    wav = (demo / first["audio"]["path"]).read_bytes()
    assert audio["bytes"] == wav if "bytes" in audio else len(audio["array"]) > 0


SHORT_RUN = {"max_steps": 20, "eval_steps": 10, "save_steps": 10, "logging_steps": 5}


def test_streaming_trains_a_demo_run_to_its_step_count(demo, tmp_path):
    """data.streaming: true, through the finetune rule on the demo's data, base and settings (a
    short run): every optimizer step it was asked for, as the Arrow-backed runs take them (an
    iterable dataset has no length to plan epochs by), and its loss falls."""
    streamed = copy_workflow(tmp_path / "streamed")
    for inputs in ("results/manifests", "results/data/aishell/wav", "results/models/base/hf"):
        (streamed / inputs).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(demo / inputs, streamed / inputs, copy_function=os.link)
    (streamed / "fast.yaml").write_text(yaml.safe_dump(FAST))
    # Unguarded (eval.general off): the guard reads its own set, whatever the training data.
    streaming = {
        "data": {"streaming": True},
        "runs": {"short": SHORT_RUN},
        "eval": {"general": None},
    }
    stream = overlay(streamed, "stream.yaml", streaming)
    adapter = "results/models/short/adapter"
    snakemake(streamed, adapter, "--allowed-rules", "finetune", *demo_args(stream))
    summary = json.loads((streamed / adapter / "training_summary.json").read_text())
    assert summary["streaming"] is True
    arrow = json.loads((demo / "results/models/lora/adapter/training_summary.json").read_text())
    assert arrow["streaming"] is False and arrow["global_step"] == 120  # the demo's max_steps
    state = json.loads((streamed / adapter / "trainer_state.json").read_text())
    assert state["global_step"] == SHORT_RUN["max_steps"], state["global_step"]
    losses = train_losses(streamed / adapter / "trainer_state.json")
    assert len(losses) == 4 and losses[-1] < losses[0], losses  # logged every 5 of 20 steps


# --- your own recordings: the demo's lectures corpus and the run that mixes it in -------------

CORPUS = "results/manifests/corpora/lectures"


def lecture_info(demo: Path, name: str) -> dict:
    return json.loads((demo / f"{CORPUS}/recordings/{name}.json").read_text())


def training_manifests(demo: Path) -> list[Path]:
    return [
        demo / "results/manifests/train.jsonl",
        demo / f"{CORPUS}/train.jsonl",
        demo / f"{CORPUS}/dev.jsonl",
        # the mixed run's (runs without a mix read results/manifests/ itself)
        *(demo / "results/manifests/runs/lectures" / f"{s}.jsonl" for s in ("train", "dev")),
    ]


def test_the_shifted_lecture_is_moved_back_within_a_tenth_of_a_second(demo):
    from whisperforge.demo.demolectures import SHIFT_S

    assert lecture_info(demo, "lecture02")["offset_s"] == pytest.approx(-SHIFT_S, abs=0.1)
    assert lecture_info(demo, "lecture02")["timing"]["applied"] is True
    for name in ("lecture01", "lecture03"):  # on time: left alone
        assert lecture_info(demo, name)["offset_s"] == 0.0


def test_the_wrong_cue_is_rejected_where_the_user_can_see_it_and_trained_on_nowhere(demo):
    import csv

    import srt

    from whisperforge.demo.demolectures import WRONG_CUE

    name, number = WRONG_CUE
    rejected = list(srt.parse((demo / f"{CORPUS}/{name}.rejected.srt").read_text()))
    wrong = next(c for c in rejected if c.index == number)
    assert "text does not fit its audio" in wrong.content
    with (demo / f"{CORPUS}/report.tsv").open() as f:
        row = next(
            r
            for r in csv.DictReader(f, delimiter="\t")
            if (r["recording"], r["cue"]) == (name, str(number))
        )
    assert row["status"].startswith("text does not fit its audio")
    # Its text is another lecture's sentence: no window of lecture02 may carry it.
    for manifest in training_manifests(demo):
        for record in read_jsonl(manifest):
            if record.get("recording") == name:
                assert row["label"] not in record["sentence"], (manifest, record["id"])


def test_nine_in_ten_correct_cues_reach_training_and_the_long_cue_does_not(demo):
    from whisperforge.demo.demolectures import LECTURES, WRONG_CUE

    with (demo / f"{CORPUS}/report.tsv").open() as f:
        import csv

        rows = list(csv.DictReader(f, delimiter="\t"))
    train = {lec.name for lec in LECTURES if lec.name != "lecture03"}
    correct = [
        r
        for r in rows
        if r["recording"] in train
        and r["label"]
        and (r["recording"], r["cue"]) != (WRONG_CUE[0], str(WRONG_CUE[1]))
        and not r["status"].startswith("longer than")
    ]
    kept = [r for r in correct if r["status"] == "kept"]
    # The demo's seed is the tiny base, whose pretraining differs from CPU to CPU: on the AMD EPYC
    # VM (2026-12-07) the wrong cue's relative margin (0.91) lay above two or three correct
    # cues', so rejecting it costs them (24 and 23 of 26 kept in two builds). Nine in ten is
    # asserted for a real seed model (test_realmodel.py: every correct cue kept).
    assert len(correct) >= 20 and len(kept) >= 0.8 * len(correct), (len(kept), len(correct))
    assert any(
        r["status"].startswith("longer than 5 s") for r in rows
    )  # lecture02's run of sentences
    trained = " ".join(r["sentence"] for r in read_jsonl(demo / f"{CORPUS}/train.jsonl"))
    for r in kept:
        assert r["label"] in trained, r


def test_no_window_of_the_held_out_lecture_is_trained_on(demo):
    test = read_jsonl(demo / f"{CORPUS}/test.jsonl")
    assert test and {r["recording"] for r in test} == {"lecture03"}
    assert all(r["sentence"] for r in test)  # no-speech windows only for training
    for manifest in training_manifests(demo):
        assert all(r.get("recording") != "lecture03" for r in read_jsonl(manifest)), manifest
    windows = read_jsonl(demo / f"{CORPUS}/train.jsonl")
    assert any(r["sentence"] == "" for r in windows)  # silence is learnt as silence
    for r in windows:  # slices of the 16 kHz copy, at most the corpus's window
        assert r["audio"]["end_time"] - r["audio"]["start_time"] <= 5.0
        assert r["audio"]["path"].startswith("results/data/corpora/lectures/")


def test_the_mixed_run_trains_on_both_corpora_and_the_aishell_run_is_untouched(demo, tmp_path):
    mix = json.loads((demo / "results/manifests/runs/lectures/mix.json").read_text())
    lectures = read_jsonl(demo / f"{CORPUS}/train.jsonl")
    assert mix["lectures"]["samples_per_epoch"] == 2 * len(lectures)  # weight 2
    assert mix["aishell"]["samples_per_epoch"] == len(
        read_jsonl(demo / "results/manifests/train.jsonl")
    )
    assert len(read_jsonl(demo / "results/manifests/runs/lectures/train.jsonl")) == sum(
        m["samples_per_epoch"] for m in mix.values()
    )
    # The AISHELL-only run reads the main corpus's manifests, as before corpora existed (the
    # loop test below shows that changing the corpus reruns only the mixed run).
    lora = json.loads((demo / "results/models/lora/provenance.json").read_text())
    assert set(lora["data"]["manifests_sha256"]) == {
        f"results/manifests/{split}.jsonl" for split in ("train", "dev", "test")
    }


def test_every_model_is_judged_on_the_whole_held_out_lecture_and_the_mixed_run_wins(demo):
    longform = {
        m: json.loads((demo / f"results/eval/{m}/lectures/longform.json").read_text())
        for m in ["base", *RUNS]
    }
    cer = {m: r["longform"]["cer"] for m, r in longform.items()}
    assert set(longform["base"]["recordings"]) == {"lecture03"}
    assert cer["lectures"] < cer["base"] and cer["lectures"] < cer["lora"], cer
    summary = (demo / "results/summary.md").read_text()
    for needle in (
        "Held-out recordings, long-form",
        "Learning curve",
        "lecture02.rejected.srt",
        "hours kept",
    ):
        assert needle in summary, needle


def linked_copy(demo: Path, dest: Path) -> Path:
    """The demo build as hard links (same mtimes, no copying); edit files only by replacing them.
    Snakemake's own records (.snakemake/) are copied: it rewrites them in place, which through a
    link would tell the shared build, and every later copy, of jobs it never ran."""
    shutil.copytree(
        demo, dest, copy_function=os.link, symlinks=True, ignore=lambda d, _: [".snakemake"]
    )
    shutil.copytree(demo / ".snakemake", dest / ".snakemake", symlinks=True)
    return dest


def replace_text(path: Path, text: str) -> None:
    path.unlink()  # never write through a hard link into the shared build
    path.write_text(text, encoding="utf-8")


def test_the_loop_subtitle_correct_retrain_rebuilds_only_what_the_correction_reaches(
    demo, tmp_path
):
    import csv

    import srt

    from whisperforge.demo.demodata import SENTENCES
    from whisperforge.demo.demolectures import LECTURES, WRONG_CUE

    loop = linked_copy(demo, tmp_path / "loop")
    # 1. Subtitle a recording with a trained run: .srt and the review queue, least sure first.
    # A named run, not `best`: which run is best after the correction is known only once the
    # corrected data has retrained `lectures`, which step 4 would then wait for.
    (loop / "inputs").mkdir()
    os.link(loop / "demo/lectures/lecture02.flac", loop / "inputs/lecture02.flac")
    args = demo_args(overlay(loop, "loop.yaml", {"subtitles": {"model": "lora"}}))
    model_srt = "results/subtitles/lora/lecture02.flac.srt"
    snakemake(loop, model_srt, *args)
    with (loop / "results/subtitles/lora/lecture02.flac.review.tsv").open() as f:
        review = list(csv.DictReader(f, delimiter="\t"))
    assert len(review) == len(list(srt.parse((loop / model_srt).read_text())))
    sure = [float(r["avg_logprob"]) for r in review]
    assert sure == sorted(sure), "least sure first"

    # 2. A person corrects the lecture's subtitles (here: the cue that had another sentence).
    name, number = WRONG_CUE
    spoken = next(lec for lec in LECTURES if lec.name == name).parts[number - 1].sentences[0]
    subtitles = loop / f"demo/lectures/{name}.srt"
    cues = list(srt.parse(subtitles.read_text(encoding="utf-8")))
    cues[number - 1].content = "".join(SENTENCES[spoken].split())
    replace_text(subtitles, srt.compose(cues, reindex=False))

    # 3. The rerun: that recording, the train split, the mixed run and what follows it; never
    # the AISHELL-only runs, the test split, or base.
    proc = snakemake(loop, "-n", *args)
    planned = jobs_planned(loop, *args)
    assert planned.get("corpus_recording") == 1 and planned.get("corpus_split") == 1, planned
    assert planned.get("finetune") == 1 and planned.get("mix_run") == 1, planned
    assert "pretrain_base" not in planned and "build_manifests" not in planned, planned
    assert "recording=lecture02" in proc.stdout and "recording=lecture01" not in proc.stdout
    assert "run=lectures" in proc.stdout and "run=lora" not in proc.stdout
    assert "split=test" not in proc.stdout.split("rule corpus_split")[1].split("rule ")[0]
    for line in proc.stdout.splitlines():
        model = re.search(r"(?<![\w])model=([^,\s]+)", line)
        if line.strip().startswith("wildcards:") and model:
            assert model.group(1) == "lectures", line  # only the retrained model is re-evaluated

    # 4. The correction is counted: the model's subtitles against the corrected file.
    snakemake(loop, f"{CORPUS}/stats.json", *args)
    stats = json.loads((loop / f"{CORPUS}/stats.json").read_text())
    correction = stats["recordings"][name]["correction"]
    assert correction["model_subtitles"] == model_srt
    assert correction["cer"] > 0 and correction["chars_changed"] > 0


def test_choosing_what_to_subtitle_reruns_no_long_form_judgement(demo, tmp_path):
    copy = linked_copy(demo, tmp_path / "copy")
    # Which recordings, by which model: other files to write, none of the written ones stale.
    chosen = overlay(copy, "chosen.yaml", {"subtitles": {"model": "lora", "inputs": "mine/"}})
    assert jobs_planned(copy, *demo_args(chosen)) == {}
    # How cues are cut: the long-form judgement of every model, then the summary.
    shaped = overlay(copy, "shaped.yaml", {"subtitles": {"max_line_chars": 16}})
    planned = jobs_planned(copy, *demo_args(shaped))
    assert planned == {"longform": 1 + len(RUNS), "summarize": 1, "all": 1}, planned
