"""Config validation with one-line errors, and the per-run training settings.

The schema (schemas/config.schema.yaml) holds every default. Snakemake's own `validate` fills them
in; we first look for errors ourselves so that a bad value is reported as one line naming the key
(`config train.learning_rate: -0.1 is less than or equal to the minimum of 0`), before any job runs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from whisperforge.core.basemodel import resolve_base
from whisperforge.core.errors import WhisperforgeError


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _key_path(error: jsonschema.ValidationError, prefix: str) -> str:
    parts = [prefix] if prefix else []
    for p in error.absolute_path:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    return ".".join(parts) or "(top level)"


def schema_error_line(error: jsonschema.ValidationError, prefix: str = "") -> str:
    message = error.message
    if error.validator == "additionalProperties":
        message = message.replace("Additional properties are not allowed", "unknown key")
    elif (
        error.validator == "oneOf"
        and isinstance(error.schema, dict)
        and "description" in error.schema
    ):
        message = f"must be {error.schema['description']}"  # the forms in words, not a repr
    return f"config {_key_path(error, prefix)}: {message}".replace("\n", " ")


def check(instance: Any, schema: dict[str, Any], prefix: str = "") -> None:
    """Raise a one-line WhisperforgeError for the most relevant schema violation, if any."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise WhisperforgeError(schema_error_line(error, prefix))


def fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Insert schema defaults into `instance` recursively (objects only, `$ref` followed)."""
    root = root or schema
    if "$ref" in schema:
        ref = schema["$ref"]
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if not isinstance(instance, dict):
        return instance
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults(instance[key], sub, root)
    return instance


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` on top of `base`; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Check the whole config and each run's merged settings; fill defaults in place."""
    schema = load_schema(schema_path)
    check(config, schema)
    fill_defaults(config, schema)
    train_schema = {**schema["$defs"]["train"], "$defs": schema["$defs"]}
    corpus_schema = {**schema["$defs"]["corpus"], "$defs": schema["$defs"]}
    for name, corpus in config["data"]["corpora"].items():
        fill_defaults(corpus, corpus_schema)
        check_corpus(name, corpus)
    for run, overlay in config["runs"].items():
        overlay = dict(overlay or {})
        mix = overlay.pop("mix", None)
        check(overlay, {**train_schema, "required": []}, prefix=f"runs.{run}")
        merged = deep_merge(config["train"], overlay)
        check(merged, train_schema, prefix=f"runs.{run}")
        if mix is not None:
            mix_schema = {**schema["$defs"]["mix"], "$defs": schema["$defs"]}
            check(mix, mix_schema, prefix=f"runs.{run}.mix")
            check_mix(run, mix, config["data"]["corpora"])
    check_base_model(config["model"])
    settle_quantizations(config["export"])
    check_eval_sets(config["eval"]["sets"])
    return config


def settle_quantizations(export: dict[str, Any]) -> None:
    """`export.quantizations` with the primary first; the one-export form of earlier versions,
    `export.quantization: q`, replaces the primary. Afterwards `quantization` names the primary."""
    primary = export["quantization"]
    if primary is not None:
        export["quantizations"] = [primary] + [
            q for q in export["quantizations"][1:] if q != primary
        ]
    export["quantization"] = export["quantizations"][0]


def check_eval_sets(sets: dict[str, str]) -> None:
    """Each extra test set's manifest must exist; its lines are checked by the import step."""
    for name, manifest in sets.items():
        if not Path(manifest).is_file():
            raise WhisperforgeError(f"config eval.sets.{name}: {manifest}: manifest not found")


def check_base_model(model: dict[str, Any]) -> None:
    base = resolve_base(model["base"], model.get("revision"))
    if base.kind == "tiny" and not model.get("tiny"):
        raise WhisperforgeError("config model.tiny: required when model.base is 'tiny'")
    if base.kind == "local" and not (base.path / "config.json").is_file():
        raise WhisperforgeError(
            f"config model.base: {base.name} is not a Whisper model directory (no config.json "
            "of transformers, no model.bin of CTranslate2)"
        )


MAIN_CORPUS = "aishell"  # the name a mix gives the main corpus (AISHELL or data.manifests)


def check_corpus(name: str, corpus: dict[str, Any]) -> None:
    """A corpus's folder or manifests must exist (its files are checked by its own steps; an hf
    corpus's folder or hub id when the workflow is planned, data/corpora.py hf_folder)."""
    key = f"config data.corpora.{name}"
    if "recordings" in corpus and not Path(corpus["recordings"]).expanduser().is_dir():
        raise WhisperforgeError(f"{key}.recordings: {corpus['recordings']}: folder not found")
    for split, manifest in (corpus.get("manifests") or {}).items():
        if not Path(manifest).expanduser().is_file():
            raise WhisperforgeError(f"{key}.manifests.{split}: {manifest}: manifest not found")
    for kind, splits in (corpus.get("lhotse") or {}).items():
        for split, manifest in splits.items():
            if not Path(manifest).expanduser().is_file():
                raise WhisperforgeError(f"{key}.lhotse.{kind}.{split}: {manifest}: not found")


def check_mix(run: str, mix: dict[str, Any], corpora: dict[str, Any]) -> None:
    for name in mix:
        if name != MAIN_CORPUS and name not in corpora:
            known = ", ".join([MAIN_CORPUS, *corpora])
            raise WhisperforgeError(
                f"config runs.{run}.mix.{name}: no such corpus (data.corpora has: {known})"
            )


def run_mix(config: dict[str, Any], run: str) -> dict[str, dict[str, float]]:
    """The run's corpora as {name: {"weight", "fraction"}}; the main corpus alone by default."""
    mix = (config["runs"][run] or {}).get("mix") or {MAIN_CORPUS: 1.0}
    return {
        name: (
            {"weight": float(entry), "fraction": 1.0}
            if isinstance(entry, (int, float))
            else {
                "weight": float(entry.get("weight", 1.0)),
                "fraction": float(entry.get("fraction", 1.0)),
            }
        )
        for name, entry in sorted(mix.items())
    }


def is_default_mix(mix: dict[str, dict[str, float]]) -> bool:
    """The main corpus alone, once: the run reads results/manifests/ as before corpora existed."""
    return mix == {MAIN_CORPUS: {"weight": 1.0, "fraction": 1.0}}


def run_settings(config: dict[str, Any], run: str) -> dict[str, Any]:
    """The full training settings of one run: `train` defaults overlaid by `runs.<run>`, less
    `mix` (the run's data, which reaches training as its manifests)."""
    if run not in config["runs"]:
        raise WhisperforgeError(f"config runs.{run}: no such run")
    overlay = {k: v for k, v in (config["runs"][run] or {}).items() if k != "mix"}
    return deep_merge(config["train"], overlay)


def section_defaults(schema_path: str | Path, section: str) -> dict[str, Any]:
    """A top-level config section with nothing set, i.e. the schema's defaults for it."""
    return fill_defaults({section: {}}, load_schema(schema_path))[section]
