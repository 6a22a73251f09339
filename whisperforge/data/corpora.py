"""Corpora beside the main one (`data.corpora`): which recordings they hold, which split each
recording belongs to, and how a run mixes corpora into its training manifests.

Standard library only: the Snakefile imports it to plan one job per recording.

A `recordings` corpus is a folder of recordings, each with a same-name subtitle file
(`lecture01.mp4` + `lecture01.srt`, `.vtt`, `.ass` or `.ssa`, in any encoding subtitle_files.py
reads). Splits are held out by recording, never by clip:
`test:` and `dev:` name recordings (file name or stem) or speakers (`speakers:` maps a recording
to its teacher, so that a split can hold out a whole speaker); a split not named gets a seeded
fraction of the remaining recordings. No window of a held-out recording reaches training.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.hubid import is_hub_id
from whisperforge.core.manifest import read_manifest, write_jsonl

AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "m4a", "mp4", "mkv")  # as subtitles.inputs takes them
SUBTITLE_EXTENSIONS = ("srt", "vtt", "ass", "ssa")  # subtitle_files.FORMATS
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Recording:
    """One recording of a corpus and its subtitle file; `name` (the file's stem) names its
    outputs and its windows' ids."""

    name: str
    audio: Path
    subtitles: Path
    speaker: str


def _suffix(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def find_recordings(
    corpus: str, folder: str | Path, speakers: Mapping[str, str]
) -> list[Recording]:
    """The recordings in `folder` with their subtitle files; a recording without one (or the
    reverse), or two recordings or subtitle files of one name, is an error naming the file."""
    folder = Path(folder).expanduser()
    key = f"config data.corpora.{corpus}.recordings"
    audio: dict[str, Path] = {}
    subtitles: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        kind = _suffix(path)
        table = (
            audio
            if kind in AUDIO_EXTENSIONS
            else subtitles
            if kind in SUBTITLE_EXTENSIONS
            else None
        )
        if table is None or not path.is_file() or path.name.startswith("."):
            continue
        if path.stem in table:
            raise WhisperforgeError(
                f"{key}: {table[path.stem]} and {path}: two files for one recording name"
            )
        table[path.stem] = path
    for stem, path in audio.items():
        if stem not in subtitles:
            raise WhisperforgeError(
                f"{path}: recording without a subtitle file ({stem}.srt, .vtt, .ass or .ssa)"
            )
    for stem, path in subtitles.items():
        if stem not in audio:
            raise WhisperforgeError(f"{path}: subtitle file without a recording of that name")
    if not audio:
        raise WhisperforgeError(f"{key}: {folder}: no recordings ({', '.join(AUDIO_EXTENSIONS)})")
    for name in speakers:
        if _stem(name) not in audio:
            raise WhisperforgeError(
                f"config data.corpora.{corpus}.speakers.{name}: no such recording"
            )
    by_stem = {_stem(name): speaker for name, speaker in speakers.items()}
    return [
        Recording(stem, path, subtitles[stem], by_stem.get(stem, stem))
        for stem, path in audio.items()
    ]


def _stem(name: str) -> str:
    """A recording named by file name (`lecture01.mp4`) or stem (`lecture01`)."""
    path = Path(name)
    return path.stem if _suffix(path) in AUDIO_EXTENSIONS else name


def _held_out(
    corpus: str, split: str, names: Iterable[str], recordings: list[Recording]
) -> set[str]:
    """The recordings a `test:`/`dev:` list names, directly or through their speaker."""
    chosen: set[str] = set()
    for name in names:
        matched = {r.name for r in recordings if r.name == _stem(name) or r.speaker == name}
        if not matched:
            raise WhisperforgeError(
                f"config data.corpora.{corpus}.{split}: {name!r} is neither a recording nor "
                "a speaker"
            )
        chosen |= matched
    return chosen


def assign_splits(
    corpus: str, settings: Mapping[str, Any], recordings: list[Recording]
) -> dict[str, str]:
    """recording name -> train, dev or test. Listed recordings (or speakers) first; a split not
    listed gets round(fraction x recordings) of the rest, drawn with `split_seed` by speaker so
    that a speaker's recordings stay together."""
    split_of: dict[str, str] = {}
    for split in ("test", "dev"):
        if settings.get(split) is None:
            continue
        for name in _held_out(corpus, split, settings[split], recordings):
            if name in split_of:
                raise WhisperforgeError(
                    f"config data.corpora.{corpus}.{split}: {name} is already in {split_of[name]}"
                )
            split_of[name] = split
    rng = random.Random(settings["split_seed"])
    for split in ("test", "dev"):
        if settings.get(split) is not None:
            continue
        free = sorted({r.speaker for r in recordings if r.name not in split_of})
        rng.shuffle(free)
        want = round(settings[f"{split}_fraction"] * len(recordings))
        taken = 0
        for speaker in free[:-1]:  # never the last speaker: training needs one
            if taken >= want:
                break
            for r in recordings:
                if r.speaker == speaker and r.name not in split_of:
                    split_of[r.name] = split
                    taken += 1
    for r in recordings:
        split_of.setdefault(r.name, "train")
    if "train" not in split_of.values():
        raise WhisperforgeError(
            f"config data.corpora.{corpus}: every recording is held out (test/dev); none is "
            "left to train on"
        )
    return split_of


def corpus_plan(corpus: str, settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{recording name: {"audio", "subtitles", "speaker", "split"}} for a recordings corpus."""
    recordings = find_recordings(corpus, settings["recordings"], settings["speakers"])
    splits = assign_splits(corpus, settings, recordings)
    return {
        r.name: {
            "audio": str(r.audio),
            "subtitles": str(r.subtitles),
            "speaker": r.speaker,
            "split": splits[r.name],
        }
        for r in recordings
    }


# --------------------------------------------------------------------------- hf and lhotse corpora

HUB_DATASETS = "resources/datasets"  # where hub datasets are fetched to, one folder per corpus


def corpus_kind(settings: Mapping[str, Any]) -> str:
    """recordings, manifests, hf or lhotse: the one key of these a corpus has (the schema's
    oneOf)."""
    return next(k for k in ("recordings", "manifests", "hf", "lhotse") if k in settings)


def hf_folder(corpus: str, hf: Mapping[str, Any], root: str | Path = ".") -> tuple[str, bool]:
    """The folder an hf corpus is read from and whether it is a hub snapshot to fetch: `path`
    itself when it is a local folder (relative to `root`, the workflow's directory), else (a hub
    id) its snapshot under HUB_DATASETS."""
    path = Path(str(hf["path"])).expanduser()
    if (Path(root) / path).is_dir():
        return str(path), False
    if not is_hub_id(str(hf["path"]), owner_required=True):
        raise WhisperforgeError(
            f"config data.corpora.{corpus}.hf.path: {hf['path']}: neither a folder nor a hub "
            "dataset id (owner/name)"
        )
    return f"{HUB_DATASETS}/{corpus}", True


def lhotse_manifests(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """split -> the lhotse manifests a lhotse corpus reads for it (none: an empty split)."""
    lhotse = settings["lhotse"]
    kinds = ["cuts"] if "cuts" in lhotse else ["recordings", "supervisions"]
    return {
        split: [lhotse[k][split] for k in kinds if (lhotse.get(k) or {}).get(split)]
        for split in SPLITS
    }


def has_test_split(settings: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> bool:
    """Whether a corpus has a test split to score every model on (`plan`: a recordings corpus's
    corpus_plan)."""
    kind = corpus_kind(settings)
    if kind == "recordings":
        return any(r["split"] == "test" for r in (plan or {}).values())
    if kind == "hf":
        return bool(settings["hf"]["splits"].get("test"))
    if kind == "lhotse":
        return bool(lhotse_manifests(settings)["test"])
    return True


# --------------------------------------------------------------------------- a run's mix


def subset_of_recordings(names: Iterable[str], fraction: float, seed: int) -> set[str]:
    """A seeded `fraction` of the recordings (at least one): the same seed and a larger fraction
    give a superset, so that runs along a learning curve add recordings, never swap them."""
    ordered = sorted(set(names))
    random.Random(seed).shuffle(ordered)
    keep = max(1, round(fraction * len(ordered))) if ordered else 0
    return set(ordered[:keep])


def repeat_by_weight(
    records: list[dict[str, Any]], weight: float, seed: int
) -> list[dict[str, Any]]:
    """Each record int(weight) times, plus a seeded share (weight's fraction) of them once more:
    the weight is how many times a corpus's samples are seen per epoch."""
    whole, part = int(weight), weight - int(weight)
    out = [record for record in records for _ in range(whole)]
    if part > 0:
        rng = random.Random(seed)
        extra = sorted(rng.sample(range(len(records)), round(part * len(records))))
        out += [records[i] for i in extra]
    return out


def mix_manifests(
    sources: Mapping[str, Mapping[str, str]],
    mix: Mapping[str, Mapping[str, float]],
    seed: int,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """A run's train and dev records from its corpora. `sources`: corpus -> {"train", "dev"}
    manifest paths; `mix`: corpus -> {"weight", "fraction"}. Train records are repeated by
    weight (after the fraction of recordings is drawn); dev records are taken once each, so
    that validation measures every corpus without weighting. Returns the records and the mix's
    facts (utterances and hours per corpus, before and after weighting)."""
    out: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}
    facts: dict[str, Any] = {}
    for index, (name, entry) in enumerate(sorted(mix.items())):
        train = read_manifest(sources[name]["train"])
        if entry["fraction"] < 1.0:
            recordings = {r.get("recording") for r in train}
            if None in recordings:
                raise WhisperforgeError(
                    f"config mix.{name}.fraction: {sources[name]['train']} has no recordings "
                    "to draw from (a fraction needs a recordings corpus)"
                )
            keep = subset_of_recordings(recordings, entry["fraction"], seed)
            train = [r for r in train if r["recording"] in keep]
        weighted = repeat_by_weight(train, entry["weight"], seed + index)
        dev = read_manifest(sources[name]["dev"])
        out["train"] += weighted
        out["dev"] += dev
        facts[name] = {
            **entry,
            "recordings": len({r["recording"] for r in train if "recording" in r}) or None,
            "utterances": len(train),
            "hours": round(sum(float(r["duration"]) for r in train) / 3600, 4),
            "samples_per_epoch": len(weighted),
            "dev_utterances": len(dev),
        }
    return out, facts


# --------------------------------------------------------------------------- a corpus's outputs


def gather_split(split: str, windows: Iterable[str | Path], out: str | Path) -> int:
    """One split's manifest from its recordings' windows. Training keeps the empty-text
    (no-speech) windows; dev and test do not: a CER needs reference text."""
    records = []
    for path in windows:
        records += [r for r in read_manifest(path) if split == "train" or r["sentence"]]
    return write_jsonl(out, records)


def gather_report(
    splits: Mapping[str, str],
    infos: Mapping[str, str | Path],
    reports: Iterable[str | Path],
    rejected: Mapping[str, str | Path],
    out_report: str | Path,
    out_stats: str | Path,
    corrections: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The corpus's report.tsv (every recording's rows under one header) and stats.json: per
    recording its facts (cues, hours in and kept, dropped by reason, offset applied), and
    totals per split. `corrections`: for recordings whose subtitle file is the workflow's own
    output corrected by a person, how much was changed (longform.correction_of_files)."""
    from whisperforge.core.files import write_json, write_text

    lines: list[str] = []
    for path in reports:
        rows = Path(path).read_text(encoding="utf-8").splitlines()
        lines += rows if not lines else rows[1:]
    write_text(out_report, "\n".join(lines) + "\n")
    recordings = {}
    for name, path in infos.items():
        facts = json.loads(Path(path).read_text(encoding="utf-8"))
        recordings[name] = {**facts, "split": splits[name], "rejected_srt": str(rejected[name])}
        if corrections and name in corrections:
            recordings[name]["correction"] = dict(corrections[name])
    totals: dict[str, Any] = {}
    for split in SPLITS:
        members = [r for r in recordings.values() if r["split"] == split]
        dropped: dict[str, int] = {}
        for r in members:
            for reason, n in r["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + n
        totals[split] = {
            "recordings": len(members),
            "speakers": len({r["speaker"] for r in members}),
            "cues": sum(r["cues"] for r in members),
            "cues_kept": sum(r["cues_kept"] for r in members),
            "hours_in": round(sum(r["hours_in"] for r in members), 4),
            "hours_kept": round(sum(r["hours_kept"] for r in members), 4),
            "windows": sum(r["windows"] for r in members),
            "dropped": dict(sorted(dropped.items())),
        }
    stats = {"kind": "recordings", "splits": totals, "recordings": recordings}
    write_json(out_stats, stats)
    return stats
