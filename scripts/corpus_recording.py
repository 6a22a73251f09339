"""One recording + its subtitle file -> checked windows, report rows, rejected cues, facts."""

from pathlib import Path

from _step import run_step

from whisperforge.data.recordings import prepare_recording
from whisperforge.train.gpu import pick_device


def main(smk):
    import torch

    seed_model = Path(smk.input.seed_model)
    device = pick_device(smk.params.device, seed_model, cuda_available=torch.cuda.is_available())
    prepare_recording(
        smk.wildcards.corpus_name,
        smk.wildcards.recording,
        {"audio": smk.input.audio, "subtitles": smk.input.subtitles, "speaker": smk.params.speaker},
        smk.params.settings,
        seed_model,
        device,
        {k: smk.output[k] for k in ("wav", "windows", "report", "info", "reference", "rejected")},
    )


run_step(snakemake, main)  # noqa: F821
