"""A lhotse corpus (`data.corpora.NAME.lhotse`): per split a CutSet manifest, or a RecordingSet
and a SupervisionSet, read with lhotse's own readers (`load_manifest`, `CutSet.from_manifests`).

Each supervision is one sample (`CutSet.trim_to_supervisions`). Its stretch of a long recording
stays a stretch: the record points into the recording's own file with Whisper-Finetune's
`audio.start_time`/`end_time`, which training and evaluation read (and resample from any rate),
so no audio is re-cut or copied. A record keeps the `recording` it comes from and its `speaker`,
so a run's `mix` can draw a `fraction` of the recordings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.manifest import make_record
from whisperforge.data import corpus_import
from whisperforge.data.corpus_import import SPLITS, BadRow, RowPolicy, SplitRows, write_corpus

OUTSIDE_AUDIO = "outside_audio"  # a supervision past the end of its recording's file
END_SLACK_S = 0.05  # lhotse rounds durations; this much past the file's end is its end


def load_cuts(lhotse: Mapping[str, Any], split: str, key: str) -> tuple[Any, str] | None:
    """The split's CutSet and the manifest(s) it was read from, or None when the config names
    none for the split."""
    from lhotse import CutSet, RecordingSet, SupervisionSet, load_manifest

    if "cuts" in lhotse:
        path = (lhotse["cuts"] or {}).get(split)
        wanted = {"cuts": (path, CutSet)}
    else:
        wanted = {
            kind: ((lhotse[kind] or {}).get(split), cls)
            for kind, cls in (("recordings", RecordingSet), ("supervisions", SupervisionSet))
        }
        given = [kind for kind, (path, _) in wanted.items() if path]
        if len(given) == 1:
            missing = "supervisions" if given == ["recordings"] else "recordings"
            raise WhisperforgeError(f"{key}.{missing}.{split}: required beside {given[0]}")
    if not any(path for path, _ in wanted.values()):
        return None
    loaded = {}
    for kind, (path, cls) in wanted.items():
        if not Path(path).expanduser().is_file():
            raise WhisperforgeError(f"{key}.{kind}.{split}: {path}: manifest not found")
        try:
            loaded[kind] = load_manifest(Path(path).expanduser())
        except Exception as e:  # lhotse raises ValueError, KeyError, JSON errors ...
            raise WhisperforgeError(
                f"{key}.{kind}.{split}: {path}: not a lhotse manifest ({one_line(e)})"
            ) from None
        if not isinstance(loaded[kind], cls):
            raise WhisperforgeError(
                f"{key}.{kind}.{split}: {path}: a {type(loaded[kind]).__name__}, not a "
                f"{cls.__name__}"
            )
    source = " + ".join(str(path) for path, _ in wanted.values())
    if "cuts" in loaded:
        return loaded["cuts"], source
    return CutSet.from_manifests(**loaded), source


def recording_file(recording: Any, known: dict[str, Any]) -> tuple[str, float]:
    """The one audio file of a lhotse Recording and its length in seconds (checked once per
    recording); BadRow when it has none or it does not open."""
    import soundfile

    if recording.id not in known:
        sources = recording.sources
        try:
            if len(sources) != 1 or sources[0].type != "file":
                raise BadRow(
                    corpus_import.UNREADABLE_AUDIO,
                    f"not one audio file (lhotse source: {', '.join(s.type for s in sources)})",
                )
            path = sources[0].source
            if not Path(path).is_file():
                raise BadRow(corpus_import.MISSING_AUDIO, f"audio file {path} not found")
            try:
                known[recording.id] = (path, soundfile.info(path).duration)
            except (soundfile.LibsndfileError, RuntimeError) as e:
                raise BadRow(
                    corpus_import.UNREADABLE_AUDIO, f"audio {path} does not open ({e})"
                ) from None
        except BadRow as e:
            known[recording.id] = e
    found = known[recording.id]
    if isinstance(found, BadRow):
        raise found
    return found


def import_split(cuts: Any, source: str, corpus: str, policy: RowPolicy) -> SplitRows:
    """Each supervision of the split's cuts as a manifest record pointing into its recording."""
    rows = SplitRows(source=source)
    files: dict[str, Any] = {}
    seen: set[str] = set()
    for cut in cuts.trim_to_supervisions(keep_overlapping=False):
        if not cut.supervisions or cut.supervisions[0].id in seen:
            continue
        supervision = cut.supervisions[0]
        seen.add(supervision.id)
        where = f"{source}: supervision {supervision.id}"
        text = corpus_import.normalize_text(supervision.text)
        if not text:
            policy.bad(rows, where, corpus_import.EMPTY_TEXT, "empty text")
            continue
        start, end = round(cut.start, 3), round(cut.start + cut.duration, 3)
        try:
            path, length = recording_file(cut.recording, files)
            if end > length + END_SLACK_S:
                raise BadRow(OUTSIDE_AUDIO, f"ends at {end} s, past the {length:.2f} s of {path}")
        except BadRow as e:
            policy.bad(rows, where, e.reason, str(e))
            continue
        if policy.filtered(rows, end - start, text):
            continue
        record = make_record(f"{corpus}-{supervision.id}", path, text, end - start)
        record["audio"].update(start_time=start, end_time=min(end, length))
        record["recording"] = cut.recording_id
        if supervision.speaker:
            record["speaker"] = supervision.speaker
        rows.add(record, supervision.speaker)
    return rows


def import_lhotse_corpus(
    corpus: str, lhotse: Mapping[str, Any], data: Mapping[str, Any], out_dir: str | Path
) -> dict[str, Any]:
    """The corpus's lhotse manifests as manifests + stats.json in out_dir. `lhotse`: the corpus's
    `lhotse` settings; `data`: the data section's filters and bad_wav. On an error nothing is
    written."""
    key = f"config data.corpora.{corpus}.lhotse"
    policy = RowPolicy.from_settings(data)
    splits = {split: SplitRows() for split in SPLITS}
    wanted = {}
    for split in SPLITS:
        found = load_cuts(lhotse, split, key)
        if found is not None:
            splits[split] = import_split(*found, corpus, policy)
            wanted[split] = True
    corpus_import.check_not_empty(splits, wanted, key)
    return write_corpus("lhotse", splits, out_dir, policy)
