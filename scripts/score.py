"""hyp.jsonl -> cer.json (CER normalized, raw, Whisper-Finetune's) + per-utterance TSV."""

from _step import run_step

from whisperforge.metrics.score import write_scores


def main(smk):
    write_scores(
        smk.input[0],
        smk.output.cer,
        smk.output.per_utt,
        numerals_to_chinese=smk.params.numerals_to_chinese,
    )


run_step(snakemake, main)  # noqa: F821
