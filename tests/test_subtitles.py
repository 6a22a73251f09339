"""Subtitles for your own recordings: cue timing, formats, bad files, and the `subtitles` rule.

The model here is a randomly initialised tiny Whisper (its text is noise), so these tests check
what does not depend on the model: cue times come from the VAD, one cue per stretch of speech,
valid SRT/WebVTT, the same cues from wav, mp3 and mp4, and one-line errors for bad files.
The rule runs on recordings named as users name them (Chinese, spaces, quotes, brackets, &, %,
$, ;), in a folder with a space in its name.
Whether the text is right is `check_lecture_cer`, which tests/test_workflow.py runs on the demo's
fine-tuned model.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import srt
import webvtt
import yaml
from helpers import ROOT, copy_workflow, snakemake

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.config import section_defaults
from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.aishell import extract_archive, read_wav_index
from whisperforge.subtitles.cues import (
    Cue,
    SubtitleOptions,
    Word,
    resolve_model,
    split_long_cues,
    to_review_tsv,
    to_srt,
    to_vtt,
    transcribe_to_cues,
    write_subtitles,
)

RATE = SAMPLE_RATE
GAPS = [1.5, 1.0, 3.0, 2.0, 1.2, 1.5]  # silence before, between and after the utterances (s)
TIMING_TOLERANCE = 0.5  # s; the VAD pads speech by 0.2 s and the demo wavs carry 0.1 s each side
OPTIONS = SubtitleOptions.from_config(
    section_defaults(ROOT / "schemas/config.schema.yaml", "subtitles")
)
FAST = replace(OPTIONS, beam_size=1, max_line_chars=10_000)  # the random model's text is noise


def make_lecture(wavs: list[Path], out: Path, gaps: list[float]) -> list[tuple[float, float]]:
    """Join 16 kHz mono wavs with silences (gaps[0] before, gaps[i] after wav i; cycled).

    Writes `out` (PCM 16) and returns each wav's (start, end) in seconds in the lecture.
    """
    parts = [np.zeros(round(gaps[0] * RATE), np.float32)]
    bounds, t = [], gaps[0]
    for i, wav in enumerate(wavs):
        audio, rate = sf.read(wav, dtype="float32")
        assert rate == RATE and audio.ndim == 1, wav
        gap = gaps[1 + i % (len(gaps) - 1)]
        bounds.append((t, t + len(audio) / RATE))
        parts += [audio, np.zeros(round(gap * RATE), np.float32)]
        t += len(audio) / RATE + gap
    sf.write(out, np.concatenate(parts), RATE, subtype="PCM_16")
    return bounds


def assert_cues_at(cues: list, bounds: list[tuple[float, float]], where: str = "") -> None:
    """One cue per utterance, each starting and ending within TIMING_TOLERANCE of it."""
    times = [(round(c.start, 2), round(c.end, 2)) for c in cues]
    assert len(cues) == len(bounds), (where, times, bounds)
    for (start, end), (b_start, b_end) in zip(times, bounds, strict=True):
        assert abs(start - b_start) <= TIMING_TOLERANCE, (where, times, bounds)
        assert abs(end - b_end) <= TIMING_TOLERANCE, (where, times, bounds)


def check_lecture_cer(
    ct2_dir: Path, workdir: Path, tmp_path: Path, *, margin: float = 0.15, beam_size: int = 5
) -> dict:
    """Subtitle a lecture of every train utterance of a workflow's manifest and check the text.

    The lecture (~3 min for the demo) joins the utterances with 1-3 s silences. Its subtitles
    must have one cue per utterance at the right times, and a CER (the workflow's scoring) at
    most `margin` above the same model's CER on the same utterances decoded one by one, the way
    evaluation does: cutting a long recording into cues must not cost accuracy. The bound is
    relative because the demo models are toys whose absolute CER on their own training clips is
    0.3-0.7. Measured with the e2e model (the demo's LoRA run), beam 5, 50 utterances: 0.598 one
    by one, 0.577 in the lecture, every cue within 0.43 s of its utterance (the VAD hears one
    voice's soft onsets late; the same for every model). A model trained without the time
    shift learns where its clips start (all espeak clips start 0.1 s in) and lost +0.25 here
    (0.61 -> 0.86): that is what this bound catches. Returns the numbers.
    """
    from whisperforge.decode.transcribe import decode_one, load_audio, load_model
    from whisperforge.metrics.cer import normalize, score_pairs

    manifest = workdir / "results/manifests/train.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    wavs = [workdir / r["audio"]["path"] for r in records]
    refs = [normalize(r["sentence"]) for r in records]
    lecture = tmp_path / "lecture.wav"
    tmp_path.mkdir(parents=True, exist_ok=True)
    bounds = make_lecture(wavs, lecture, [1.5, 1.0, 1.5, 2.0, 2.5, 3.0])

    model, _, _ = load_model(ct2_dir, "auto", threads=1)
    opts = {"language": "zh", "task": "transcribe", "beam_size": beam_size}
    alone = [normalize(decode_one(model, load_audio(wav), **opts)) for wav in wavs]
    cues = transcribe_to_cues(model, lecture, replace(OPTIONS, beam_size=beam_size))
    assert_cues_at(cues, bounds, str(lecture))
    in_lecture = [normalize(c.text) for c in cues]
    facts = {
        "utterances": len(records),
        "lecture_s": round(sf.info(lecture).duration, 1),
        "cer_alone": score_pairs(refs, alone)["cer"],
        "cer_lecture": score_pairs(refs, in_lecture)["cer"],
        "max_timing_error_s": max(
            max(abs(c.start - b[0]), abs(c.end - b[1])) for c, b in zip(cues, bounds, strict=True)
        ),
    }
    assert facts["cer_lecture"] <= facts["cer_alone"] + margin, facts
    return facts


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory) -> Path:
    """A randomly initialised tiny Whisper, exported the way export_ct2 does (float16)."""
    from ctranslate2.converters import TransformersConverter

    from whisperforge.model.export import COPY_FILES
    from whisperforge.model.tinymodel import build_tiny_whisper

    work = tmp_path_factory.mktemp("tiny")
    build_tiny_whisper(work / "hf")  # seed 0: writes (noise) text for every clip of the lecture
    TransformersConverter(str(work / "hf"), copy_files=list(COPY_FILES)).convert(
        str(work / "ct2"), quantization="float16"
    )
    return work / "ct2"


@pytest.fixture(scope="module")
def model(tiny_ct2):
    from whisperforge.decode.transcribe import load_model

    return load_model(tiny_ct2, "auto", threads=1)[0]  # the test machine may be shared


@pytest.fixture(scope="module")
def train_wavs(tmp_path_factory) -> list[Path]:
    """The first train wav of each of 5 demo speakers, from the shipped archive."""
    work = tmp_path_factory.mktemp("demo")
    extract_archive(
        ROOT / "demo/data_aishell.tgz",
        work / "wav",
        work / "transcript.txt",
        work / "wavs.tsv",
        threads=1,
    )
    first: dict[str, Path] = {}
    for entry in read_wav_index(work / "wavs.tsv"):
        if entry.split == "train":
            first.setdefault(entry.speaker, Path(entry.path))
    return [first[speaker] for speaker in sorted(first)[:5]]


@pytest.fixture(scope="module")
def lecture(tmp_path_factory, train_wavs) -> tuple[Path, list[tuple[float, float]]]:
    out = tmp_path_factory.mktemp("lecture") / "lecture.wav"
    return out, make_lecture(train_wavs, out, GAPS)


@pytest.fixture(scope="module")
def lecture_cues(model, lecture) -> list[Cue]:
    return transcribe_to_cues(model, lecture[0], FAST)


def vtt_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


# --- the lecture --------------------------------------------------------------------------------


def test_lecture_has_one_cue_per_utterance_at_the_known_times(lecture, lecture_cues):
    assert_cues_at(lecture_cues, lecture[1])


def read_review(path: Path) -> list[dict[str, str]]:
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    return [dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows]


def test_srt_and_vtt_parse_with_the_same_cues(tiny_ct2, lecture, tmp_path):
    out = {ext: tmp_path / f"lecture.wav.{ext}" for ext in ("srt", "vtt", "txt", "review.tsv")}
    paths = (out["srt"], out["vtt"], out["txt"])
    facts = write_subtitles(
        tiny_ct2,
        lecture[0],
        *paths,
        FAST,
        compute_type="auto",
        threads=1,
        out_review=out["review.tsv"],
    )
    assert facts["cues"] == facts["speech_segments"] == len(lecture[1])
    parsed = list(srt.parse(out["srt"].read_text(encoding="utf-8")))
    assert [c.index for c in parsed] == [1, 2, 3, 4, 5]
    assert_cues_at(
        [Cue(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in parsed],
        lecture[1],
        "srt",
    )
    vtt = webvtt.read(str(out["vtt"]))
    assert [(vtt_seconds(c.start), vtt_seconds(c.end)) for c in vtt] == [
        (c.start.total_seconds(), c.end.total_seconds()) for c in parsed
    ]
    assert [html.unescape(c.text) for c in vtt] == [c.content for c in parsed]
    assert out["txt"].read_text(encoding="utf-8").splitlines() == [c.content for c in parsed]
    # review.tsv: every .srt cue once, as written there, least sure (lowest avg_logprob) first
    review = read_review(out["review.tsv"])
    assert [int(r["rank"]) for r in review] == [1, 2, 3, 4, 5]
    assert sorted(int(r["cue"]) for r in review) == [1, 2, 3, 4, 5]
    by_number = {c.index: c for c in parsed}
    for row in review:
        cue = by_number[int(row["cue"])]
        assert row["text"] == cue.content
        stamps = (row["start"], row["end"])
        assert stamps == tuple(map(srt.timedelta_to_srt_timestamp, (cue.start, cue.end)))
    logprobs = [float(r["avg_logprob"]) for r in review]
    assert logprobs == sorted(logprobs) and len(set(logprobs)) > 1, logprobs
    assert all(0 <= float(r["no_speech_prob"]) <= 1 for r in review)
    assert all(float(r["compression_ratio"]) > 0 for r in review)
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_review_puts_the_least_sure_cue_first_and_unscored_cues_last():
    cues = [
        Cue(0.0, 1.0, "甲", avg_logprob=-0.2, no_speech_prob=0.1, compression_ratio=1.0),
        Cue(1.0, 2.0, "乙"),  # a cue without scores (not from a decode)
        Cue(2.0, 3.0, "丙", avg_logprob=-1.5, no_speech_prob=0.0, compression_ratio=1.1),
        Cue(3.0, 4.5, "丁", avg_logprob=-0.2, no_speech_prob=0.2, compression_ratio=3.0),
    ]
    review = [r.split("\t") for r in to_review_tsv(cues).splitlines()]
    assert review[0] == [
        *("rank", "cue", "start", "end"),
        *("avg_logprob", "no_speech_prob", "compression_ratio", "text"),
    ]
    assert [(r[0], r[1], r[-1]) for r in review[1:]] == [
        ("1", "3", "丙"),  # lowest log-probability
        ("2", "4", "丁"),  # tied with 甲, but repeats itself more
        ("3", "1", "甲"),
        ("4", "2", "乙"),
    ]
    assert review[2][2:7] == ["00:00:03,000", "00:00:04,500", "-0.2000", "0.2000", "3.0000"]
    assert review[4][4:7] == ["", "", ""]
    # split cues keep the confidence of the cue they came from
    long = replace(cues[2], text="今天我们讨论一下，中国经济的增长速度和房地产市场的未来走势")
    assert {c.avg_logprob for c in split_long_cues([long], max_line_chars=20)} == {-1.5}


def test_long_cues_split_into_short_lines_within_their_span(lecture_cues):
    lines = split_long_cues(lecture_cues, max_line_chars=20, max_segment_s=6)
    assert len(lines) > len(lecture_cues)  # the random model writes long noise
    for cue in lecture_cues:
        inside = [c for c in lines if cue.start <= c.start and c.end <= cue.end]
        assert inside[0].start == cue.start and inside[-1].end == cue.end
        assert all(a.end == b.start for a, b in itertools.pairwise(inside))
        assert "".join(c.text for c in inside).replace(" ", "") == cue.text.replace(" ", "")
    assert all(len(c.text) <= 20 and c.end - c.start <= 6 for c in lines)


def test_mp3_and_mp4_give_the_same_cues_as_wav(model, lecture, lecture_cues, tmp_path):
    wav = lecture[0]
    mp3, mp4 = tmp_path / "lecture.mp3", tmp_path / "lecture.mp4"
    ffmpeg("-i", str(wav), "-c:a", "libmp3lame", "-b:a", "64k", str(mp3))
    ffmpeg(
        *("-f", "lavfi", "-i", "color=c=black:s=32x32:r=5", "-i", str(wav)),
        *("-shortest", "-c:v", "mpeg4", "-c:a", "aac", "-b:a", "64k", str(mp4)),
    )
    for path in (mp3, mp4):
        cues = transcribe_to_cues(model, path, FAST)
        assert len(cues) == len(lecture_cues), path
        for got, want in zip(cues, lecture_cues, strict=True):
            assert abs(got.start - want.start) <= 0.1, (path, got.start, want.start)
            assert abs(got.end - want.end) <= 0.1, (path, got.end, want.end)


# --- cues and formats without a model -------------------------------------------------------------


def test_a_model_that_never_stops_is_cut_at_the_clip_token_budget(tmp_path, lecture):
    """A babbling model (scaled random weights: never <|endoftext|>) decodes each clip up to
    MAX_TOKENS_PER_S tokens a second of the longest clip, despite CTranslate2 ending decodes at
    about half of what `max_new_tokens` asks."""
    from ctranslate2.converters import TransformersConverter
    from helpers import scale_weights

    from whisperforge.data.media import decode_recording
    from whisperforge.decode.transcribe import load_model
    from whisperforge.model.export import COPY_FILES
    from whisperforge.model.tinymodel import build_tiny_whisper
    from whisperforge.subtitles.cues import MAX_TOKENS_PER_S, _decode_clips, speech_clips

    scale_weights(build_tiny_whisper(tmp_path / "hf"), 4.0)
    TransformersConverter(str(tmp_path / "hf"), copy_files=list(COPY_FILES)).convert(
        str(tmp_path / "ct2"), quantization="int8"
    )
    babbler = load_model(tmp_path / "ct2", "auto", threads=1)[0]
    audio = decode_recording(lecture[0])
    clips = speech_clips(audio, OPTIONS)
    budget = MAX_TOKENS_PER_S * max(end - start for start, end in clips)
    opts = replace(OPTIONS, beam_size=1)
    tokens = [len(s.tokens) for s in _decode_clips(babbler, audio, clips, opts)]
    assert len(tokens) == len(clips)
    assert all(0.9 * budget <= n <= budget + 3 for n in tokens), (tokens, budget)


def test_split_by_characters_and_by_words():
    text = "今天我们讨论一下，中国经济的增长速度和房地产市场的未来走势"  # 29 characters
    by_chars = split_long_cues([Cue(10.0, 16.0, text)], max_line_chars=20)
    assert [c.text for c in by_chars] == [
        "今天我们讨论一下，",
        "中国经济的增长速度和房地产市场的未来走势",
    ]
    assert by_chars[0].end == pytest.approx(10.0 + 6.0 * 9 / 29)
    words = tuple(Word(11.0 + 0.1 * i, 11.1 + 0.1 * i, ch) for i, ch in enumerate(text))
    by_words = split_long_cues([Cue(10.0, 16.0, text, words)], max_line_chars=20)
    assert [c.text for c in by_words] == [c.text for c in by_chars]
    assert (by_words[0].start, by_words[0].end, by_words[1].end) == pytest.approx((10, 11.9, 16))
    assert split_long_cues([Cue(0.0, 1.0, "短句")], max_line_chars=20) == [Cue(0.0, 1.0, "短句")]


def test_formats_escape_and_count_hours():
    cues = [Cue(3725.5, 3727.25, "a <b> & c"), Cue(3728.0, 3729.0, "第二\n行")]
    text = to_srt(cues)
    assert text.startswith("1\n01:02:05,500 --> 01:02:07,250\na <b> & c\n\n2\n")
    assert [c.content for c in srt.parse(text)] == ["a <b> & c", "第二 行"]
    vtt = to_vtt(cues)
    assert "01:02:05.500 --> 01:02:07.250\na &lt;b&gt; &amp; c\n" in vtt
    assert [html.unescape(c.text) for c in webvtt.from_string(vtt)] == ["a <b> & c", "第二 行"]


def write_cer(path: Path, cer: float) -> Path:
    """A cer.json with the keys the report reads (what rule score writes, trimmed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = {"substitutions": 0, "deletions": 0, "insertions": 0, "n_utts": 1}
    path.write_text(json.dumps({"cer": cer, **counts}))
    return path


def test_resolve_model_picks_the_run_with_the_lowest_test_cer(tmp_path):
    cer = {}
    for model, split, value in [
        ("base", "test", 0.05),  # never chosen: "best" means the best fine-tune
        ("lora", "test", 0.30),
        ("lora-r8", "test", 0.20),
        ("lora", "dev", 0.01),
    ]:
        cer[(model, split)] = write_cer(tmp_path / f"{model}-{split}.json", value)
    assert resolve_model("best", cer) == "lora-r8"
    assert resolve_model("lora", cer) == "lora"


# --- bad recordings -----------------------------------------------------------------------------


def bad_recordings(folder: Path) -> dict[str, str]:
    """name -> the message its WhisperforgeError must carry (after the file name)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("not audio at all\n")
    sf.write(folder / "silence.wav", np.zeros(5 * RATE, np.float32), RATE, subtype="PCM_16")
    return {
        "empty.wav": "empty file (0 bytes)",
        "notes.wav": "cannot decode audio",
        "silence.wav": "no speech found",
    }


def test_bad_recordings_raise_one_line_naming_the_file(model, tmp_path):
    for name, message in bad_recordings(tmp_path).items():
        with pytest.raises(WhisperforgeError) as error:
            transcribe_to_cues(model, tmp_path / name, FAST)
        assert str(error.value).startswith(f"{tmp_path / name}: {message}"), error.value
        assert "\n" not in str(error.value)
    with pytest.raises(WhisperforgeError, match="silent recording"):
        transcribe_to_cues(model, tmp_path / "silence.wav", replace(FAST, vad=False))


# --- the rule -----------------------------------------------------------------------------------

RUNS = ["lora", "lora-r8"]
# Names users really have, none of which may reach a shell: the folder (subtitles.inputs) too.
INPUTS = "我的 录音 (2024)"
GOOD = ["讲座 第1课 (final).wav", "it's a&b [v2] 100%; cost $5.mp3"]
BAD = 'bad "take" $HOME.wav'  # not audio: its own job fails, with the name as it is
NOT_A_RECORDING = "说明 & notes.txt"
NEW = "new 新 $(date) #3.wav"
SUB_ARGS = [
    *("--configfile", "config.yaml", "sub.yaml"),
    *("--set-threads", "subtitles=1", "--allowed-rules", "subtitles"),
]


def targets(*names: str, model: str = "best") -> list[str]:
    return [f"results/subtitles/{model}/{n}.{ext}" for n in names for ext in ("srt", "vtt", "txt")]


def every_output(name: str, model: str = "best") -> list[str]:
    """What one subtitles job writes: the three formats, the review table, and last its log."""
    return [
        *targets(name, model=model),
        f"results/subtitles/{model}/{name}.review.tsv",
        f"logs/subtitles/{model}/{name}.log",
    ]


def subtitles_job(name: str, model: str = "best") -> tuple[str, str, str]:
    """The (rule, outputs, log) a dry run prints for the job of recording `name`."""
    *outputs, log = every_output(name, model)
    return "subtitles", ", ".join(outputs), log


def planned_jobs(workdir: Path, *args: str) -> set[tuple[str, str, str]]:
    """(rule, outputs, log) of every job `snakemake -n` plans, as it prints them: the outputs
    joined by ", ", so that no name, whatever it holds, is split."""
    jobs, job = set(), None
    for line in snakemake(workdir, "-n", *args).stdout.splitlines():
        if rule := re.fullmatch(r"(?:local)?rule (\S+):", line):
            job = {"rule": rule[1], "output": "", "log": ""}
        elif job and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            job[key] = value
        elif job:
            jobs.add((job["rule"], job["output"], job["log"]))
            job = None
    assert job is None, "the dry run's output ended inside a job"
    return jobs


@pytest.fixture(scope="module")
def workflow(tmp_path_factory, tiny_ct2, train_wavs) -> Path:
    """A workflow copy with two "trained" runs (exports + test CERs) and, in a folder with a space
    in its name, three recordings with odd names, one bad, and a file that is no recording, after
    `snakemake --keep-going` on their best-model subtitles. Only the subtitles rule is allowed, so
    the exports and CERs are taken as they are."""
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    for run, cer in zip(RUNS, (0.3, 0.2), strict=True):
        shutil.copytree(tiny_ct2, workdir / f"results/models/{run}/ct2-float16")
        write_cer(workdir / f"results/eval/{run}/test/cer.json", cer)
    inputs = workdir / INPUTS
    inputs.mkdir()
    (inputs / BAD).write_text("not audio at all\n")
    shutil.copy(train_wavs[0], inputs / GOOD[0])
    ffmpeg("-i", str(train_wavs[1]), "-c:a", "libmp3lame", str(inputs / GOOD[1]))
    (inputs / NOT_A_RECORDING).write_text("not a recording: no subtitles\n")
    sub = {"runs": {run: {} for run in RUNS}, "subtitles": {"beam_size": 1, "inputs": INPUTS}}
    (workdir / "sub.yaml").write_text(yaml.safe_dump(sub, allow_unicode=True), encoding="utf-8")
    proc = snakemake(workdir, *targets(BAD, *GOOD), *SUB_ARGS, "--keep-going", check=False)
    workdir.joinpath("run.stderr").write_text(proc.stderr, encoding="utf-8")
    assert proc.returncode != 0, "the bad recording's job must fail"
    return workdir


def test_keep_going_builds_the_good_recordings(workflow):
    for name in GOOD:
        for path in every_output(name):
            assert (workflow / path).stat().st_size > 0, path
        log = (workflow / f"logs/subtitles/best/{name}.log").read_text(encoding="utf-8")
        assert "model lora-r8" in log, log
        review = read_review(workflow / f"results/subtitles/best/{name}.review.tsv")
        assert review and review[0]["rank"] == "1", review
        cues = (workflow / f"results/subtitles/best/{name}.srt").read_text(encoding="utf-8")
        assert list(srt.parse(cues)), name
    stderr = (workflow / "run.stderr").read_text(encoding="utf-8")
    assert f"whisperforge error in rule subtitles: {INPUTS}/{BAD}: cannot decode audio" in stderr
    assert not any((workflow / path).exists() for path in every_output(BAD)[:-1])
    log = (workflow / f"logs/subtitles/best/{BAD}.log").read_text(encoding="utf-8")
    assert f"ERROR subtitles: {INPUTS}/{BAD}: cannot decode audio" in log, log
    # Nothing else was written: no output under a mangled or half name.
    written = {p.name for p in (workflow / "results/subtitles/best").iterdir()}
    assert written == {Path(p).name for name in GOOD for p in every_output(name)[:-1]}, written


def test_default_target_has_every_recording_and_nothing_else(workflow):
    planned = planned_jobs(workflow, "--configfile", "config.yaml", "sub.yaml")
    # One job per recording, with every output of it; the .txt file is no recording.
    subtitles = {job for job in planned if job[0] == "subtitles"}
    assert subtitles == {subtitles_job(name) for name in (BAD, *GOOD)}, subtitles


def test_new_recording_builds_alone_and_a_new_best_rebuilds_all(workflow, train_wavs):
    # Targets before --allowed-rules, which would take them as rule names.
    everything = [*targets(BAD, *GOOD, NEW), *SUB_ARGS]
    shutil.copy(train_wavs[2], workflow / INPUTS / NEW)
    try:
        # Every job planned, of any rule: only these.
        assert planned_jobs(workflow, *everything) == {subtitles_job(BAD), subtitles_job(NEW)}
        write_cer(workflow / "results/eval/lora/test/cer.json", 0.1)  # lora is now the best
        assert planned_jobs(workflow, *everything) == {
            subtitles_job(name) for name in (BAD, *GOOD, NEW)
        }
        other = [*targets(GOOD[0], model="lora-r8"), *SUB_ARGS]
        assert planned_jobs(workflow, *other) == {subtitles_job(GOOD[0], model="lora-r8")}
    finally:
        (workflow / INPUTS / NEW).unlink()
