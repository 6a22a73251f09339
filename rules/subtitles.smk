# Subtitles for your own recordings: subtitles.inputs/<file> -> results/subtitles/<model>/<file>.*
#
# <file> keeps its extension (inputs/lecture.mp3 -> results/subtitles/best/lecture.mp3.srt): so
# lecture.mp3 and lecture.wav side by side get separate subtitles instead of two jobs for one
# output, and every output names the one recording it came from.
# One job per recording: a new or changed recording rebuilds only its own subtitles. <model> is
# base, a run name, or "best": the run with the lowest test CER, chosen when the job runs; the
# best jobs take every run's test cer.json and export as input, so a new best rebuilds them all.
# A recording that is empty, not audio or silent fails its own job with one line naming it (and
# Snakemake removes that job's outputs); run with --keep-going so that the others still finish.
# Each job also writes <file>.review.tsv: the .srt's cues least sure first (the model's
# avg_logprob, no_speech_prob, compression_ratio), for a person correcting the subtitles.

from whisperforge.subtitles.cues import BEST, RECORDING_NAME, is_recording

SUBTITLES = config["subtitles"]
SUBTITLE_MODELS = [BEST, *MODELS]
if SUBTITLES["model"] not in SUBTITLE_MODELS:
    raise WorkflowError(
        f"config subtitles.model: {SUBTITLES['model']!r} is not one of "
        f"{', '.join(SUBTITLE_MODELS)}"
    )

# The recordings (file names with extension) in subtitles.inputs; none without the folder.
SUBTITLE_INPUTS = sorted(
    name
    for name in (
        glob_wildcards(str(Path(SUBTITLES["inputs"]) / "{name}")).name
        if Path(SUBTITLES["inputs"]).is_dir()
        else []
    )
    if is_recording(name)
)
# Every format of every recording for subtitles.model (part of all_targets).
SUBTITLE_TARGETS = expand(
    "results/subtitles/{subtitle_model}/{name}.{ext}",
    subtitle_model=SUBTITLES["model"],
    name=SUBTITLE_INPUTS,
    ext=["srt", "vtt", "txt"],
)


rule subtitles:
    input:
        audio=lambda wc: str(Path(SUBTITLES["inputs"]) / wc.name),
        ct2=lambda wc: expand(
            f"results/models/{{model}}/{CT2_DIR}",
            model=RUNS if wc.subtitle_model == BEST else [wc.subtitle_model],
        ),
        cer=lambda wc: (
            expand("results/eval/{run}/test/cer.json", run=RUNS)
            if wc.subtitle_model == BEST
            else []
        ),
    output:
        srt="results/subtitles/{subtitle_model}/{name}.srt",
        vtt="results/subtitles/{subtitle_model}/{name}.vtt",
        txt="results/subtitles/{subtitle_model}/{name}.txt",
        review="results/subtitles/{subtitle_model}/{name}.review.tsv",
    log:
        "logs/subtitles/{subtitle_model}/{name}.log",
    benchmark:
        "benchmarks/out/subtitles_{subtitle_model}_{name}.tsv"
    wildcard_constraints:
        subtitle_model="|".join(re.escape(m) for m in SUBTITLE_MODELS),
        name=RECORDING_NAME,
    conda:
        "../envs/evaluate.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        runs=RUNS,
        options=subtitle_options(),
        compute_type=config["eval"]["compute_type"],
        code=code_digest("subtitles.py"),
    script:
        "../scripts/subtitles.py"
