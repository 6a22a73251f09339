"""Hub-ready folders of a run's models, with a Hugging Face model card, and the opt-in push.

`build_hub_folder` makes `results/hub/<run>/<artifact>/`: the artifact's files (the merged
transformers model, or one CTranslate2 export) hard-linked from where the workflow wrote them
(copied only across file systems; nothing is recomputed), plus a `README.md` model card that
`huggingface_hub.ModelCard.load` parses: YAML metadata (language, base model, datasets, license,
pipeline tag, library, model-index with the run's CER on every evaluated set) and a short body
(how it was trained, how to use it, the CER table against the base model). The folder is built
beside its destination and renamed into place, so a reader sees the old folder or the new one.
Linked files are the model's own: replace a file in a hub folder, never edit it in place.

`push_folder` uploads one such folder as one commit (`upload_folder`): either every file lands
or none does (`create_repo` may have made the empty repo by then); network, token and hub errors
become one line naming the repo and the cause.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisperforge.core.basemodel import resolve_base
from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.files import atomic_dir, json_number, read_json_object, sha256_file

TRANSFORMERS = "transformers"
CT2_PREFIX = "ct2-"
BEST = "best"  # hub.run null: push the run with the lowest test CER, chosen when the job runs
TASK = "automatic-speech-recognition"
DEMO_DATASET = "whisperforge-demo"
AISHELL_DATASET = "AISHELL-1"
CARD = "README.md"
# Snakemake's mtime carrier inside directory outputs: linking it would tie the hub folder's
# timestamp to the model's (touching one touches both), and it means nothing on the hub.
SKIP_FILES = frozenset({".snakemake_timestamp", CARD})
SPLITS = ("train", "dev", "test")
# Snakemake's --config takes no dotted keys: a section is given as one YAML mapping.
REPO_ID_UNSET = "config hub.repo_id: not set; push with --config 'hub={repo_id: <user>/<name>}'"
# The second normalization of cer.json (from the evaluation of issue #14 on); optional.
WF_KEY = "cer_whisper_finetune"


def artifacts(quantizations: Sequence[str]) -> list[str]:
    """Every artifact of a run: the merged transformers model, then each CTranslate2 export."""
    return [TRANSFORMERS, *(f"{CT2_PREFIX}{q}" for q in quantizations)]


def artifact_quantization(artifact: str, quantizations: Sequence[str]) -> str:
    """The export whose CER an artifact carries: its own, or the primary one for transformers
    (the merged model is evaluated through its primary export)."""
    if artifact == TRANSFORMERS:
        return quantizations[0]
    q = artifact.removeprefix(CT2_PREFIX)
    if not artifact.startswith(CT2_PREFIX) or q not in quantizations:
        raise WhisperforgeError(
            f"config hub.artifact: {artifact!r} is not one of {', '.join(artifacts(quantizations))}"
        )
    return q


def dataset_names(manifests: Mapping[str, str] | None, demo: bool) -> dict[str, str]:
    """The dataset of each split (train, dev, test), as the card names it: the user's manifest
    by file name, the demo's synthesized archive, or AISHELL-1."""
    if manifests:
        return {split: Path(manifests[split]).stem for split in SPLITS if split in manifests}
    return dict.fromkeys(SPLITS, DEMO_DATASET if demo else AISHELL_DATASET)


def trained_on(datasets: Mapping[str, str]) -> list[str]:
    """The card's `datasets`: what the train split came from (dev only validates)."""
    return [datasets["train"]] if "train" in datasets else sorted(set(datasets.values()))


def base_license(base_dir: str | Path, configured: str | None) -> str:
    """hub.license when set, else the license in the base model's own card, else "other"."""
    if configured:
        return configured
    readme = Path(base_dir) / CARD
    if readme.is_file():
        from huggingface_hub import ModelCard

        license_ = ModelCard.load(readme, ignore_metadata_errors=True).data.license
        if license_:
            return str(license_)
    return "other"


# --- the card ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """One cer.json, reduced to what the card shows (fractions, as the file has them)."""

    cer: float
    cer_wf: float | None
    n_utts: int | None
    normalization: str | None


def load_score(path: str | Path) -> Score:
    # Imported here: the Snakefile imports this module, and scoring brings jiwer and zhconv.
    from whisperforge.metrics.score import load_cer

    obj = load_cer(path)
    cer = json_number(obj["cer"])
    if cer is None:
        raise WhisperforgeError(f"{path}: cer is not a number")
    n_utts = obj.get("n_utts")
    return Score(
        cer=cer,
        cer_wf=json_number(obj.get(WF_KEY)),
        n_utts=n_utts if isinstance(n_utts, int) else None,
        normalization=obj.get("normalization"),
    )


def percent(fraction: float) -> float:
    """A CER fraction as the card's percentage (2 decimals, as CER tables are read)."""
    return round(100.0 * fraction, 2)


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says about one artifact of one run."""

    run: str
    artifact: str
    quantization: str  # the export the CER was measured on
    base: str  # config model.base: a hub id, a local directory, or "tiny" (the demo)
    revision: str | None
    license: str
    datasets: Mapping[str, str]  # split -> dataset (dataset_names)
    language: str | None
    settings: Mapping[str, Any]
    scores: Mapping[str, Score]  # set name -> this run's CER, in table order
    base_scores: Mapping[str, Score]  # the base model's, same sets and export
    stats: Mapping[str, Any]  # results/manifests/stats.json
    provenance: Mapping[str, Any]
    provenance_sha256: str
    mix: Mapping[str, Any] | None = None  # a mixed run's results/manifests/runs/<run>/mix.json
    general: str | None = None  # eval.general: the general-speech set forgetting is judged on
    max_forgetting: float = 2.0  # eval.max_forgetting, CER points


def model_name(facts: CardFacts) -> str:
    base = "tiny-demo" if facts.base == "tiny" else Path(facts.base.rstrip("/")).name
    suffix = "" if facts.artifact == TRANSFORMERS else f"-{facts.artifact}"
    return f"{base}-{facts.run}{suffix}"


def _set_label(name: str, datasets: Mapping[str, str]) -> tuple[str, str | None]:
    """(dataset, split) of an evaluated set: a split of the corpus, or an eval.sets name."""
    if name in datasets:
        return datasets[name], name
    return name, None


def eval_results(facts: CardFacts) -> list[Any]:
    """model-index entries: the run's CER (%) on each set, both normalizations when present."""
    from huggingface_hub import EvalResult

    results = []
    for name, score in facts.scores.items():
        dataset, split = _set_label(name, facts.datasets)
        common = {
            "task_type": TASK,
            "task_name": "Speech Recognition",
            "dataset_type": dataset,
            "dataset_name": f"{dataset} ({split})" if split else dataset,
            "dataset_split": split,
            "metric_type": "cer",
        }
        results.append(EvalResult(**common, metric_name="CER (%)", metric_value=percent(score.cer)))
        if score.cer_wf is not None:
            results.append(
                EvalResult(
                    **common,
                    metric_name="CER (%, Whisper-Finetune normalization)",
                    metric_config="whisper-finetune",
                    metric_value=percent(score.cer_wf),
                )
            )
    return results


def _fmt_cer(score: Score | None, wf: bool = False) -> str:
    if score is None:
        return "-"
    value = score.cer_wf if wf else score.cer
    return "-" if value is None else f"{percent(value):.2f}"


def cer_table(facts: CardFacts) -> str:
    wf = any(s.cer_wf is not None for s in [*facts.scores.values(), *facts.base_scores.values()])
    head = ["set", "utterances", "base CER %", "this model CER %", "change (points)"]
    if wf:
        head += ["base CER % (W-F norm.)", "this model CER % (W-F norm.)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
    for name, score in facts.scores.items():
        base = facts.base_scores.get(name)
        delta = "-" if base is None else f"{percent(score.cer) - percent(base.cer):+.2f}"
        row = [name, str(score.n_utts or "-"), _fmt_cer(base), _fmt_cer(score), delta]
        if wf:
            row += [_fmt_cer(base, wf=True), _fmt_cer(score, wf=True)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def forgetting_line(facts: CardFacts) -> str | None:
    """The card's word on forgetting: the run's general-speech CER against base's and the
    budget (forgetting.py, as the summary says it)."""
    from whisperforge.metrics.forgetting import Forgetting

    general, base = (
        facts.scores.get(facts.general or ""),
        facts.base_scores.get(facts.general or ""),
    )
    if general is None or base is None:
        return None
    row = Forgetting(facts.run, facts.general or "", general.cer, base.cer, facts.max_forgetting)
    verdict = (
        f"**over the budget of {facts.max_forgetting:g} points: this model forgot general speech**"
        if row.over_budget
        else f"within the budget of {facts.max_forgetting:g} points"
    )
    return (
        f"Forgetting: on the general-speech set `{row.general_set}` this model's CER is "
        f"{100 * row.general_cer:.2f} % against the base model's {100 * row.base_general_cer:.2f} "
        f"% ({row.points:+.2f} points), {verdict}."
    )


def _method(settings: Mapping[str, Any]) -> str:
    if settings.get("use_adalora"):
        ada = settings.get("adalora", {})
        return (
            f"AdaLoRA (init r {ada.get('init_r')}, target r {ada.get('target_r')}, "
            f"alpha {ada.get('alpha')}, dropout {ada.get('dropout')})"
        )
    lora = settings.get("lora", {})
    return f"LoRA (r {lora.get('r')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')})"


def training_lines(facts: CardFacts) -> list[str]:
    s = facts.settings
    training = (facts.provenance.get("model") or {}).get("training") or {}
    length = (
        f"{s.get('max_steps')} optimizer steps"
        if (s.get("max_steps") or -1) > 0
        else f"{s.get('num_train_epochs')} epochs"
    )
    batch = training.get("effective_batch") or s.get("effective_batch_size")
    augment = s.get("augment") or {}
    on = [k.removesuffix("_prob") for k, v in augment.items() if k.endswith("_prob") and v]
    lines = [
        f"- Method: {_method(s)} on {', '.join(s.get('lora', {}).get('target_modules', []))}, "
        "merged into the base weights.",
        f"- Schedule: learning rate {s.get('learning_rate')}, warm-up {s.get('warmup_steps')} "
        f"steps, {length}"
        + (f" ({training['global_step']} done)" if training.get("global_step") else "")
        + (f", batch {batch} per optimizer step" if batch else "")
        + f", seed {s.get('seed')}.",
        f"- Language {s.get('language')}, task {s.get('task')}, timestamps "
        f"{'on' if s.get('timestamps') else 'off'}, feature padding {s.get('feature_padding')}, "
        f"augmentation: {', '.join(on) or 'none'}.",
    ]
    if training.get("device"):
        how = [
            f"{training.get(key)} {label}"
            for key, label in (
                ("precision", "precision"),
                ("processes", "process(es)"),
                ("micro_batch", "per micro-batch"),
                ("gradient_accumulation", "accumulation steps"),
            )
            if training.get(key) is not None
        ]
        lines.append(
            f"- Trained on {training['device']}" + (f": {', '.join(how)}." if how else ".")
        )
    return lines


def data_table(stats: Mapping[str, Any]) -> str:
    splits = [sp for sp in SPLITS if sp in (stats.get("utterances") or {})]
    cols = [("utterances", "utterances"), ("hours", "hours"), ("speakers", "speakers")]
    cols = [(key, title) for key, title in cols if isinstance(stats.get(key), dict)]
    lines = [
        "| split | " + " | ".join(title for _, title in cols) + " |",
        "| --- |" + " ---: |" * len(cols),
    ]
    for sp in splits:
        lines.append(
            f"| {sp} | " + " | ".join(str(stats[key].get(sp, "-")) for key, _ in cols) + " |"
        )
    return "\n".join(lines)


def mix_table(mix: Mapping[str, Any]) -> str:
    """A mixed run's corpora: what each gave to training (as drawn) and to validation."""
    lines = [
        "| corpus | weight | recordings | utterances | hours | samples an epoch | dev utterances |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in sorted(mix.items()):
        recordings = "-" if c.get("recordings") is None else c["recordings"]
        lines.append(
            f"| {name} | {c['weight']:g} | {recordings} | {c['utterances']} | {c['hours']:g} "
            f"| {c['samples_per_epoch']} | {c['dev_utterances']} |"
        )
    return "\n".join(lines)


def data_lines(facts: CardFacts) -> list[str]:
    if not facts.mix:
        return ["Data (utterances after the workflow's filters):", "", data_table(facts.stats)]
    return [
        "Trained on a mix of corpora (`weight`: how many times each utterance is seen an "
        "epoch; utterances and hours of each train split as the mix drew it):",
        "",
        mix_table(facts.mix),
        "",
        "The main corpus, whose splits are evaluated above (utterances after the workflow's "
        "filters):",
        "",
        data_table(facts.stats),
    ]


def usage(facts: CardFacts) -> str:
    lang = facts.language or "zh"
    where = '"."  # this folder, or the hub repo id it was pushed to'
    if facts.artifact == TRANSFORMERS:
        return (
            "```python\n"
            "from transformers import pipeline\n\n"
            f"model = {where}\n"
            f'asr = pipeline("{TASK}", model=model)\n'
            f'print(asr("audio.wav", generate_kwargs={{"language": "{lang}", '
            '"task": "transcribe"})["text"])\n'
            "```"
        )
    return (
        "```python\n"
        "from faster_whisper import WhisperModel\n\n"
        f"model = {where}\n"
        f'asr = WhisperModel(model, device="cuda", compute_type="{facts.quantization}")\n'
        '# on a CPU: WhisperModel(model, device="cpu", compute_type="int8")\n'
        f'segments, info = asr.transcribe("audio.wav", language="{lang}", beam_size=5)\n'
        'print("".join(segment.text for segment in segments))\n'
        "```"
    )


def card_text(facts: CardFacts) -> str:
    """The card's body (markdown below the metadata)."""
    revision = f" at revision `{facts.revision}`" if facts.revision else ""
    if facts.base == "tiny":
        base = (
            "the whisperforge demo's tiny Whisper (5.7 M parameters, built offline and "
            "pretrained in the workflow; not a hub model)"
        )
    elif resolve_base(facts.base).hub_id:
        base = f"[{facts.base}](https://huggingface.co/{facts.base}){revision}"
    else:
        base = f"a local Whisper (`{facts.base}`)"
    what = (
        "the merged transformers model"
        if facts.artifact == TRANSFORMERS
        else f"its CTranslate2 export ({facts.quantization}, for faster-whisper)"
    )
    norm = next((s.normalization for s in facts.scores.values() if s.normalization), None)
    prov = facts.provenance
    workflow = prov.get("workflow") or {}
    data = prov.get("data") or {}
    commit = workflow.get("commit")
    dirty = " (with uncommitted changes)" if workflow.get("dirty") else ""
    parts = [
        f"# {model_name(facts)}",
        "",
        "Whisper fine-tuned for speech recognition"
        + (f" (language `{facts.language}`)" if facts.language else "")
        + f" on {', '.join(trained_on(facts.datasets))} with whisperforge (run "
        f"`{facts.run}`), from {base}. This folder holds {what}.",
        "",
        "## Evaluation",
        "",
        (
            "Character error rate (CER) of this model as the workflow evaluates it: through its "
            f"CTranslate2 {facts.quantization} export"
            if facts.artifact == TRANSFORMERS
            else f"Character error rate (CER) of this {facts.quantization} export"
        )
        + ", decoded with faster-whisper, against the base model decoded the same way"
        + (f". Normalization: {norm}." if norm else ".")
        + (
            " W-F norm.: Whisper-Finetune's evaluation normalization."
            if any(s.cer_wf is not None for s in facts.scores.values())
            else ""
        ),
        "",
        cer_table(facts),
        "",
        *([line, ""] if (line := forgetting_line(facts)) else []),
        "## Training",
        "",
        *training_lines(facts),
        "",
        *data_lines(facts),
        "",
        "Provenance: `provenance.json` sha256 "
        f"`{facts.provenance_sha256}`"
        + (f", workflow commit `{commit}`{dirty}" if commit else "")
        + (f", archive md5 `{data['archive_md5']}`" if data.get("archive_md5") else "")
        + ".",
        "",
        "<details><summary>All training settings</summary>",
        "",
        "```json",
        json.dumps(facts.settings, indent=2, sort_keys=True, ensure_ascii=False),
        "```",
        "",
        "</details>",
        "",
        "## How to use",
        "",
        usage(facts),
        "",
    ]
    return "\n".join(parts)


def build_card(facts: CardFacts) -> Any:
    """The model card (a `huggingface_hub.ModelCard`) of one artifact."""
    from huggingface_hub import ModelCard, ModelCardData

    library = TRANSFORMERS if facts.artifact == TRANSFORMERS else "ctranslate2"
    method = "adalora" if facts.settings.get("use_adalora") else "lora"
    tags = ["whisper", "whisperforge", method, "audio"]
    if library == "ctranslate2":
        tags += ["ctranslate2", "faster-whisper"]
    if facts.base == "tiny":
        tags.append("demo")
    data = ModelCardData(
        language=facts.language,
        license=facts.license,
        # The hub rejects a base_model that is not a hub id: the demo and local bases say it
        # in the body only.
        base_model=facts.base if resolve_base(facts.base).hub_id else None,
        datasets=trained_on(facts.datasets),
        pipeline_tag=TASK,
        library_name=library,
        tags=tags,
        metrics=["cer"],
        model_name=model_name(facts),
        eval_results=eval_results(facts) or None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_text(facts)}")


# --- the folder -------------------------------------------------------------------------------


def link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link `src` at `dst`; copy where links cannot be made (another file system, or one
    without hard links). Returns True when linked."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


def link_tree(src_dir: Path, dst_dir: Path, skip: Iterable[str] = SKIP_FILES) -> dict[str, int]:
    """Every file under `src_dir` (symlinks followed, `skip` names left out) at the same relative
    path under `dst_dir`. Returns {"linked": n, "copied": m}."""
    skip = set(skip)
    counts = {"linked": 0, "copied": 0}
    for root, _dirs, files in os.walk(src_dir, followlinks=True):
        rel = Path(root).relative_to(src_dir)
        for name in sorted(files):
            if name in skip:
                continue
            (dst_dir / rel).mkdir(parents=True, exist_ok=True)
            src = (Path(root) / name).resolve()
            counts["linked" if link_or_copy(src, dst_dir / rel / name) else "copied"] += 1
    if not counts["linked"] + counts["copied"]:
        raise WhisperforgeError(f"{src_dir}: no model files to put in a hub folder")
    return counts


def build_hub_folder(out_dir: str | Path, model_dir: str | Path, card: Any) -> dict[str, int]:
    """`out_dir` = `model_dir`'s files (linked) + the card as README.md, built beside `out_dir`
    and renamed over it: a failed build leaves the previous folder (or none)."""
    out_dir, model_dir = Path(out_dir), Path(model_dir)
    if not model_dir.is_dir():
        raise WhisperforgeError(f"{model_dir}: model directory not found")
    with atomic_dir(out_dir, what="a hub folder") as tmp:
        counts = link_tree(model_dir, tmp)
        card.save(tmp / CARD)
    return counts


def make_hub_folder(
    out_dir: str | Path,
    model_dir: str | Path,
    *,
    run: str,
    artifact: str,
    quantization: str,
    cer_files: Mapping[str, str | Path],
    base_cer_files: Mapping[str, str | Path],
    provenance: str | Path,
    stats: str | Path,
    mix: str | Path | None = None,
    base: str,
    revision: str | None,
    base_dir: str | Path,
    license: str | None,
    datasets: Mapping[str, str],
    language: str | None,
    settings: Mapping[str, Any],
    general: str | None = None,
    max_forgetting: float = 2.0,
) -> dict[str, int]:
    """Read the run's CER files (set name -> cer.json of export `quantization`: the artifact's
    own, or the primary one for transformers), the base model's on the same sets, provenance
    and data counts (`mix`: a mixed run's mix.json); build the card and the folder."""
    facts = CardFacts(
        run=run,
        artifact=artifact,
        quantization=quantization,
        base=base,
        revision=revision,
        license=base_license(base_dir, license),
        datasets=dict(datasets),
        language=language,
        settings=dict(settings),
        scores={name: load_score(path) for name, path in cer_files.items()},
        base_scores={name: load_score(path) for name, path in base_cer_files.items()},
        stats=read_json_object(stats, "manifest stats"),
        provenance=read_json_object(provenance, "provenance"),
        provenance_sha256=sha256_file(provenance),
        mix=read_json_object(mix, "a run's mix") if mix else None,
        general=general,
        max_forgetting=max_forgetting,
    )
    return build_hub_folder(out_dir, model_dir, build_card(facts))


# --- the push ---------------------------------------------------------------------------------


def _push_errors() -> tuple[type[BaseException], ...]:
    """What a failed push raises: the hub's errors, bad repo ids, and the HTTP clients'
    connection errors (httpx for huggingface_hub >= 1, requests before; requests' are OSErrors)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    errors: list[type[BaseException]] = [
        HfHubHTTPError,
        LocalTokenNotFoundError,
        ValueError,  # HFValidationError: a malformed repo id
        OSError,
    ]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def push_folder(
    folder: str | Path,
    repo_id: str | None,
    *,
    private: bool,
    commit_message: str | None = None,
) -> dict[str, Any]:
    """Create `repo_id` if needed and upload `folder` to it in one commit; returns the receipt
    (repo, URLs, commit). The token is huggingface_hub's own (HF_TOKEN or `hf auth login`)."""
    if not repo_id:
        raise WhisperforgeError(REPO_ID_UNSET)
    folder = Path(folder)
    if not (folder / CARD).is_file():
        raise WhisperforgeError(f"{folder}: not a hub folder (no {CARD})")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"whisperforge: {folder.parent.name}/{folder.name}",
            ignore_patterns=sorted(SKIP_FILES - {CARD}),
        )
    except _push_errors() as e:
        raise WhisperforgeError(
            f"hub.repo_id {repo_id}: push of {folder} failed: {one_line(e)}"
        ) from None
    return {
        "repo_id": repo_id,
        "repo_url": str(repo_url),
        "commit_url": info.commit_url,
        "commit": info.oid,
        "folder": str(folder),
        "private": private,
    }


def push_runs(repo_id: str | None, run: str | None, runs: Sequence[str]) -> list[str]:
    """The runs whose folders a push needs: hub.run, or every run for the best one. Without
    hub.repo_id it fails at once, before anything is built for it."""
    if not repo_id:
        raise WhisperforgeError(REPO_ID_UNSET)
    return list(runs) if (run or BEST) == BEST else [run]
