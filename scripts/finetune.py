"""Fine-tune a run's LoRA adapters (or, for the demo's base model, all weights)."""

from pathlib import Path

from _step import run_step

from whisperforge.train.finetune import finetune


def main(smk):
    out = Path(smk.output.model)
    finetune(
        smk.input.base,
        smk.input.train,
        smk.input.dev,
        out,
        smk.params.checkpoints,
        dict(smk.params.settings),
        threads=smk.threads,
        general_manifest=next(iter(getattr(smk.input, "general", [])), None),
    )
    loss_plot = getattr(smk.output, "loss_plot", None)  # finetune has one, pretrain_base not
    if loss_plot:
        from whisperforge.evaluate.plots import plot_loss

        plot_loss(out / "trainer_state.json", loss_plot, smk.wildcards.run)


run_step(snakemake, main)  # noqa: F821
