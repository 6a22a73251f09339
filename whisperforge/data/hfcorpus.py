"""A Hugging Face dataset as a corpus (`data.corpora.NAME.hf`): a hub dataset (one pinned
snapshot, fetched once with huggingface_hub) or a local folder (`save_to_disk` output, parquet
files, an `audiofolder` with `metadata.csv`, or a hub-layout folder), read with `datasets` and
written as 16 kHz wavs under `results/data/corpora/NAME/` and Whisper-Finetune manifests.

Audio is read from the Arrow rows undecoded (the `{bytes, path}` of datasets' Audio feature):
datasets 5 decodes through torchcodec, which needs a matching torch and FFmpeg build, while
soundfile reads wav, flac, ogg/opus and mp3 (Common Voice's) directly and PyAV the rest. Rows are
streamed, so no Arrow cache of the dataset is written anywhere.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperforge.core.audio import SAMPLE_RATE, resample
from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.files import atomic_dir
from whisperforge.core.manifest import make_record
from whisperforge.data import corpus_import
from whisperforge.data.corpus_import import SPLITS, BadRow, RowPolicy, SplitRows, write_corpus

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

BATCH_ROWS = 64  # Arrow rows read at a time


def open_dataset(folder: str | Path, name: str | None, key: str) -> Mapping[str, Any]:
    """The dataset's splits (split name -> Dataset or IterableDataset) in a local folder:
    `save_to_disk` output (load_from_disk), a hub-layout folder with configs (`name`), parquet
    files, or an audiofolder (metadata.csv/jsonl beside the audio). A lone saved Dataset is the
    split `train`."""
    import datasets

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WhisperforgeError(f"{key}.path: {folder}: folder not found")
    try:
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            loaded = datasets.load_from_disk(str(folder))
            return {"train": loaded} if isinstance(loaded, datasets.Dataset) else loaded
        if name:
            return datasets.load_dataset(str(folder), name=name, streaming=True)
        builder = "parquet" if any(folder.rglob("*.parquet")) else "audiofolder"
        return datasets.load_dataset(builder, data_dir=str(folder), streaming=True)
    except Exception as e:  # datasets raises many kinds (FileNotFoundError, ValueError, ...)
        raise WhisperforgeError(
            f"{key}.path: {folder}: cannot read it as a Hugging Face dataset ({one_line(e)})"
        ) from None


def iter_rows(dataset: Any, source: str) -> Iterator[dict[str, Any]]:
    """A split's rows as plain dicts, Audio columns undecoded (`{bytes, path}`); a dataset that
    `datasets` cannot read (a metadata.csv whose columns change type ...) is one line."""
    tables = iter(dataset.with_format("arrow").iter(batch_size=BATCH_ROWS))
    while True:
        try:
            table = next(tables)
        except StopIteration:
            return
        except Exception as e:  # pyarrow's ArrowInvalid, datasets' own errors, OSError ...
            raise WhisperforgeError(f"{source}: cannot read its rows ({one_line(e)})") from None
        yield from table.to_pylist()


def _decode_with_av(source: Any) -> tuple[np.ndarray, int]:
    """Mono float32 at 16 kHz of what soundfile cannot read (m4a, aac ...), through PyAV."""
    import av
    import numpy as np

    chunks = []
    with av.open(source) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(stream):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), SAMPLE_RATE


def decode_cell(cell: Any, base: Path) -> np.ndarray:
    """16 kHz mono float32 of an audio cell: `{bytes, path}` (datasets' Audio feature) or a
    path (relative ones against `base`); BadRow when it is missing or does not decode."""
    import soundfile

    cell = {"path": cell} if isinstance(cell, str) else (cell or {})
    data, path = cell.get("bytes"), cell.get("path")
    if data:
        source: Any = io.BytesIO(data)
    elif path:
        file = Path(path) if Path(path).is_absolute() else base / path
        if not file.is_file():
            raise BadRow(corpus_import.MISSING_AUDIO, f"audio file {file} not found")
        source = str(file)
    else:
        raise BadRow(corpus_import.MISSING_AUDIO, "no audio")
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
        samples = resample(samples.mean(axis=1), rate)
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        try:
            if isinstance(source, io.BytesIO):
                source.seek(0)
            samples, _ = _decode_with_av(source)
        except Exception as e:  # PyAV's FFmpegError subclasses, IndexError (no audio stream)
            raise BadRow(
                corpus_import.UNREADABLE_AUDIO, f"audio does not open ({one_line(e)})"
            ) from None
    if not samples.size:
        raise BadRow(corpus_import.UNREADABLE_AUDIO, "audio holds no samples")
    return samples


def _check_columns(row: Mapping[str, Any], hf: Mapping[str, Any], key: str, where: str) -> None:
    for setting in ("audio_column", "text_column", "speaker_column"):
        column = hf.get(setting)
        if column is not None and column not in row:
            raise WhisperforgeError(
                f"{key}.{setting}: no column {column!r} in {where} (has: {', '.join(row)})"
            )


def import_split(
    dataset: Any,
    split: str,
    corpus: str,
    hf: Mapping[str, Any],
    policy: RowPolicy,
    folders: tuple[Path, Path, Path],
) -> SplitRows:
    """One split's rows as 16 kHz wavs and manifest records. `folders`: the dataset's folder
    (relative audio paths), where the wavs are referenced and where they are written now."""
    import soundfile

    key = f"config data.corpora.{corpus}.hf"
    source = f"{hf['path']} split {hf['splits'][split]!r}"
    rows = SplitRows(source=source)
    base, audio_dir, staging = folders
    (staging / split).mkdir(parents=True, exist_ok=True)
    for index, row in enumerate(iter_rows(dataset, source)):
        if index == 0:
            _check_columns(row, hf, key, source)
        where = f"{source} row {index}"
        cell = row[hf["audio_column"]]
        if isinstance(cell, dict) and cell.get("path"):
            where += f" ({cell['path']})"
        text = corpus_import.normalize_text(row[hf["text_column"]])
        if not text:
            policy.bad(rows, where, corpus_import.EMPTY_TEXT, "empty text")
            continue
        try:
            samples = decode_cell(cell, base)
        except BadRow as e:
            policy.bad(rows, where, e.reason, str(e))
            continue
        duration = samples.size / SAMPLE_RATE
        if policy.filtered(rows, duration, text):
            continue
        utt_id = f"{corpus}-{split}-{index:06d}"
        soundfile.write(str(staging / split / f"{utt_id}.wav"), samples, SAMPLE_RATE, "PCM_16")
        record = make_record(utt_id, str(audio_dir / split / f"{utt_id}.wav"), text, duration)
        speaker = row.get(hf["speaker_column"]) if hf.get("speaker_column") else None
        if speaker:
            record["speaker"] = str(speaker)
        rows.add(record, speaker)
    return rows


def import_hf_corpus(
    corpus: str,
    hf: Mapping[str, Any],
    source_dir: str | Path,
    data: Mapping[str, Any],
    audio_dir: str | Path,
    out_dir: str | Path,
) -> dict[str, Any]:
    """The corpus's dataset in `source_dir` (a local folder, or the hub snapshot fetched for it)
    as wavs in audio_dir and manifests + stats.json in out_dir. `hf`: the corpus's `hf` settings;
    `data`: the data section's filters and bad_wav. On an error nothing is written."""
    key = f"config data.corpora.{corpus}.hf"
    policy = RowPolicy.from_settings(data)
    dataset = open_dataset(source_dir, hf.get("name"), key)
    audio_dir = Path(audio_dir)
    splits = {split: SplitRows() for split in SPLITS}
    with atomic_dir(audio_dir, what="the corpus audio") as staging:
        for split in SPLITS:
            wanted = hf["splits"].get(split)
            if not wanted:
                continue
            if wanted not in dataset:
                raise WhisperforgeError(
                    f"{key}.splits.{split}: no split {wanted!r} in {source_dir} (has: "
                    f"{', '.join(dataset)}; null for none)"
                )
            splits[split] = import_split(
                dataset[wanted], split, corpus, hf, policy, (Path(source_dir), audio_dir, staging)
            )
        corpus_import.check_not_empty(splits, hf["splits"], key)
    return write_corpus("hf", splits, out_dir, policy)
