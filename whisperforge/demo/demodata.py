"""The shipped offline demo data: two mini AISHELL-1 archives synthesized with espeak-ng.

`demo/data_aishell.tgz` is the *target domain* and `demo/base_domain.tgz` the *base domain*. Both
reproduce the real AISHELL-1 layout exactly, so the whole pipeline runs on them unchanged:

    data_aishell/transcript/aishell_transcript_v0.8.txt   "BAC009S0002W0121 央行 下调 ..." lines
    data_aishell/wav/S0002.tar.gz                          one gzipped tar per speaker, holding
        train/S0002/BAC009S0002W0121.wav                   16 kHz, 16-bit, mono PCM wav

Every "speaker" is one espeak-ng voice (a variant such as `+f3`, plus pitch and speed) reading a
subset of the same ~30 AISHELL-style news sentences (`SENTENCES`). The base domain is read by male
voices at normal pitch and speed; the target domain by female voices at high pitch and a faster
rate, and its test speakers are voices that appear nowhere else. A tiny Whisper pretrained on the
base domain therefore does badly on the target test voices until it is adapted to the target train
voices.

Generation is deterministic: fixed order, tar members sorted with mtime 0, uid/gid 0 and no owner
names, gzip headers with mtime 0 and no file name. With the same espeak-ng, sox and zlib, running
`build_demo_archives` twice gives byte-identical archives.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.aishell import (
    SPEAKER_TAR_DIR,
    TRANSCRIPT_MEMBER,
    normalize_transcript_text,
    wav_header,
)

ESPEAK_VOICE = "cmn-latn-pinyin"  # plain `cmn` reads latin letters (and some hanzi) as English
UTT_ID = "BAC009S{speaker:04d}W{number:04d}"
FIRST_UTT_NUMBER = 121  # real AISHELL utterance numbers per speaker start around W0121
ORPHAN_UTT_NUMBER = 901  # wavs with no transcript line get W0901, W0902, ...
SPLIT_RANGES = {"train": (2, 723), "dev": (724, 763), "test": (764, 916)}  # real speaker ids

# ~30 AISHELL-style news sentences (finance, housing, tech, sports), word-segmented like the real
# transcript. Two contain full-width latin letters, as a few real AISHELL lines do.
SENTENCES: tuple[str, ...] = (
    "央行 下调 存款 准备金 率",
    "一线 城市 房价 涨幅 回落",
    "今年 楼市 成交 明显 下降",
    "ａ股 三 大 指数 集体 收涨",
    "五月 ｃｐｉ 同比 上涨",
    "多 地 出台 楼市 新政",
    "首套 房 贷款 利率 下调",
    "新能源 汽车 销量 创 新高",
    "科技 公司 发布 新款 手机",
    "人工 智能 产业 发展 迅速",
    "中国 女排 赢得 冠军",
    "国足 将 在 主场 迎战 对手",
    "两 市 成交 额 突破 万亿",
    "银行 理财 收益 率 走低",
    "二手房 挂牌 量 持续 增加",
    "土地 市场 成交 趋于 平稳",
    "芯片 企业 加大 研发 投入",
    "互联网 平台 加强 数据 安全",
    "北京 马拉松 明天 开跑",
    "球队 主教练 宣布 离任",
    "外汇 储备 保持 稳定",
    "多 家 房企 公布 销售 业绩",
    "消费 市场 呈现 回暖 态势",
    "保障 房 建设 加快 推进",
    "网球 公开赛 今天 开幕",
    "这 款 软件 用户 过亿",
    "人民币 汇率 小幅 回升",
    "银行 不良 贷款 率 下降",
    "游泳 队 获得 三 枚 金牌",
    "电商 平台 迎来 购物 高峰",
)

# Spoken into one train speaker's tar but given no transcript line (real AISHELL has 325 such wavs).
ORPHAN_SENTENCES: tuple[str, ...] = ("股市 开盘 小幅 上扬", "体育 场馆 对外 开放")


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice: a variant (`f3` -> `-v cmn-latn-pinyin+f3`), pitch 0-99, words/min."""

    variant: str
    pitch: int = 50
    speed: int = 175

    def describe(self) -> str:
        return f"+{self.variant} -p {self.pitch} -s {self.speed}"


@dataclass(frozen=True)
class Speaker:
    """One demo speaker: AISHELL speaker number, split, voice and the sentences it reads."""

    number: int
    split: str
    voice: Voice
    sentences: tuple[int, ...]  # indices into the archive's sentence list
    orphans: int = 0  # how many ORPHAN_SENTENCES this speaker also reads (no transcript line)

    @property
    def name(self) -> str:
        return f"S{self.number:04d}"

    def utt_id(self, number: int) -> str:
        return UTT_ID.format(speaker=self.number, number=number)


def rotate(count: int, offset: int, total: int = len(SENTENCES)) -> tuple[int, ...]:
    """`count` consecutive sentence indices starting at `offset`, wrapping around `total`."""
    return tuple((offset + i) % total for i in range(count))


# Target domain: female voices, high pitch, fast. Train speakers cover every sentence twice; the
# test voices (f5, Andrea) and the dev voice (f4) are heard nowhere else, in either archive.
TARGET_SPEAKERS: tuple[Speaker, ...] = (
    Speaker(2, "train", Voice("f1", pitch=72, speed=195), rotate(10, 0), orphans=2),
    Speaker(3, "train", Voice("f2", pitch=68, speed=205), rotate(10, 10)),
    Speaker(4, "train", Voice("f3", pitch=75, speed=190), rotate(10, 20)),
    Speaker(5, "train", Voice("linda", pitch=70, speed=200), rotate(10, 5)),
    Speaker(6, "train", Voice("Alicia", pitch=66, speed=210), rotate(10, 15)),
    Speaker(724, "dev", Voice("f4", pitch=74, speed=200), rotate(6, 3)),
    Speaker(764, "test", Voice("f5", pitch=70, speed=195), rotate(7, 1)),
    Speaker(765, "test", Voice("Andrea", pitch=72, speed=165), rotate(7, 16)),
)

# Base domain: male voices at normal pitch and speed, train and a small dev only.
BASE_SPEAKERS: tuple[Speaker, ...] = (
    Speaker(150, "train", Voice("m1", pitch=50, speed=175), rotate(10, 0)),
    Speaker(151, "train", Voice("m2", pitch=45, speed=170), rotate(10, 10)),
    Speaker(152, "train", Voice("m3", pitch=50, speed=180), rotate(10, 20)),
    Speaker(153, "train", Voice("m6", pitch=55, speed=175), rotate(10, 5)),
    Speaker(154, "train", Voice("m7", pitch=45, speed=180), rotate(10, 15)),
    Speaker(155, "train", Voice("m8", pitch=50, speed=175), rotate(10, 25)),
    Speaker(740, "dev", Voice("m4", pitch=50, speed=175), rotate(5, 12)),
)

# An extra test set out of the fine-tune's domain (eval.sets): a male voice at normal pitch, as the
# base domain is read but heard in neither archive. The base model should do well on it; a run
# that does worse there has forgotten the base domain while adapting to the target voices.
OUT_OF_DOMAIN_SPEAKER = Speaker(900, "ood", Voice("m5", pitch=50, speed=175), rotate(6, 7))
OUT_OF_DOMAIN_DIR = "base_voice_set"

DEMO_ARCHIVES: dict[str, tuple[Speaker, ...]] = {
    "data_aishell.tgz": TARGET_SPEAKERS,
    "base_domain.tgz": BASE_SPEAKERS,
}

_LATIN_RUN = re.compile(r"[A-Za-z]+")


# --------------------------------------------------------------------------- synthesis


def require_tools(tools: Iterable[str] = ("espeak-ng", "sox")) -> None:
    """Raise WhisperforgeError naming every missing command-line tool."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise WhisperforgeError(
            f"demo data needs {' and '.join(missing)} on PATH "
            "(Debian/Ubuntu: apt-get install espeak-ng sox)"
        )


def spoken_text(text: str) -> str:
    """What espeak-ng is given for a transcript line: words joined, latin letters spelled.

    Full-width letters become ASCII (NFKC) and every latin run is spelled letter by letter in
    capitals (`ｃｐｉ` -> ` C P I `), which espeak-ng's pinyin voice reads as letter names.
    """
    text = unicodedata.normalize("NFKC", text).replace(" ", "")
    return _LATIN_RUN.sub(lambda m: " " + " ".join(m.group(0).upper()) + " ", text).strip()


def _run(cmd: Sequence[str], what: str) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise WhisperforgeError(f"{what}: cannot run {cmd[0]} ({e})") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit status {result.returncode}"
        raise WhisperforgeError(f"{what}: {cmd[0]} failed ({reason})")


def synthesize(text: str, voice: Voice, out_wav: str | Path) -> float:
    """Speak `text` with `voice` into `out_wav` (16 kHz, 16-bit, mono); returns its duration.

    espeak-ng writes 22.05 kHz audio; sox trims leading and trailing silence, pads 0.1 s on each
    side, resamples and normalizes the peak to -3 dBFS, without dither (`-D`), so the output is a
    pure function of the input.
    """
    require_tools()
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wf-espeak-") as tmp:
        raw = Path(tmp) / "raw.wav"
        espeak = [
            "espeak-ng",
            "-v",
            f"{ESPEAK_VOICE}+{voice.variant}",
            "-p",
            str(voice.pitch),
            "-s",
            str(voice.speed),
            "-w",
            str(raw),
            spoken_text(text),
        ]
        _run(espeak, f"{out_wav}: synthesizing {text!r}")
        trim = ["silence", "1", "0.02", "0.5%", "reverse"]
        sox = ["sox", "-D", "-V1", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16"]
        sox += ["-e", "signed-integer", str(out_wav), *trim, *trim]
        sox += ["pad", "0.1", "0.1", "norm", "-3"]
        _run(sox, f"{out_wav}: converting")
    return wav_duration(out_wav.read_bytes(), str(out_wav))


def wav_duration(data: bytes, where: str) -> float:
    """Duration of a 16 kHz 16-bit mono wav; WhisperforgeError if it is anything else."""
    rate, channels, width, seconds = wav_header(data, where)
    if (rate, channels, width) != (SAMPLE_RATE, 1, 2):
        fmt = (rate, channels, width)
        raise WhisperforgeError(f"{where}: wav is {fmt} (rate, channels, bytes), not 16 kHz mono")
    return seconds


# --------------------------------------------------------------------------- archives


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    """A deterministic gzipped tar of `files` (path -> content) with their parent directories."""
    dirs = {str(Path(p).parents[i]) + "/" for p in files for i in range(len(Path(p).parts) - 1)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(dirs | set(files)):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if name in dirs:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
    return gzip_bytes(buf.getvalue())


def gzip_bytes(data: bytes) -> bytes:
    """gzip -9 with mtime 0 and no file name in the header, so the output is reproducible."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


@dataclass(frozen=True)
class ArchiveSummary:
    """What `build_aishell_archive` wrote: per-split utterance counts, durations, md5, size."""

    path: str
    md5: str
    size: int
    utterances: dict[str, int]  # split -> utterances with a transcript line
    seconds: dict[str, float]  # split -> total audio seconds (transcribed utterances)
    orphans: int
    min_duration: float
    max_duration: float


def build_aishell_archive(
    out_tgz: str | Path,
    speakers: Sequence[Speaker],
    sentences: Sequence[str] = SENTENCES,
    orphan_sentences: Sequence[str] = ORPHAN_SENTENCES,
) -> ArchiveSummary:
    """Synthesize every speaker's sentences and pack them as a real-layout AISHELL-1 tgz.

    Speaker `s` reading sentence `i` becomes `BAC009S{s}W{121 + i}`; its orphan wavs (no transcript
    line) are `W0901`, `W0902`, ... The transcript lists utterances sorted by id.
    """
    require_tools()
    numbers = [spk.number for spk in speakers]
    if len(set(numbers)) != len(numbers):
        raise WhisperforgeError(f"{out_tgz}: duplicate speaker numbers {numbers}")
    for spk in speakers:
        low, high = SPLIT_RANGES.get(spk.split, (0, -1))
        if not low <= spk.number <= high:
            raise WhisperforgeError(
                f"{out_tgz}: speaker {spk.name} is not a real AISHELL {spk.split} speaker id"
            )
        if spk.orphans > len(orphan_sentences):
            raise WhisperforgeError(f"{out_tgz}: {spk.name} wants more orphans than exist")

    out_tgz = Path(out_tgz)
    members: dict[str, bytes] = {}
    lines: list[str] = []
    utterances = dict.fromkeys(("train", "dev", "test"), 0)
    seconds = dict.fromkeys(("train", "dev", "test"), 0.0)
    durations: list[float] = []
    n_orphans = 0
    with tempfile.TemporaryDirectory(prefix="wf-demodata-") as tmp:
        for spk in sorted(speakers, key=lambda s: s.number):
            todo = [(FIRST_UTT_NUMBER + i, sentences[i], True) for i in sorted(spk.sentences)]
            todo += [
                (ORPHAN_UTT_NUMBER + k, orphan_sentences[k], False) for k in range(spk.orphans)
            ]
            wavs: dict[str, bytes] = {}
            for number, text, transcribed in todo:
                utt = spk.utt_id(number)
                wav = Path(tmp) / f"{utt}.wav"
                duration = synthesize(text, spk.voice, wav)
                wavs[f"{spk.split}/{spk.name}/{utt}.wav"] = wav.read_bytes()
                durations.append(duration)
                if transcribed:
                    lines.append(f"{utt} {text}")
                    utterances[spk.split] += 1
                    seconds[spk.split] += duration
                else:
                    n_orphans += 1
            members[f"{SPEAKER_TAR_DIR}{spk.name}.tar.gz"] = _tar_bytes(wavs)
    members[TRANSCRIPT_MEMBER] = "".join(f"{line}\n" for line in sorted(lines)).encode("utf-8")
    data = _tar_bytes(members)
    out_tgz.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out_tgz.with_name(out_tgz.name + ".tmp")
    tmp_out.write_bytes(data)
    tmp_out.replace(out_tgz)
    return ArchiveSummary(
        path=str(out_tgz),
        md5=hashlib.md5(data).hexdigest(),
        size=len(data),
        utterances=utterances,
        seconds={split: round(s, 2) for split, s in seconds.items()},
        orphans=n_orphans,
        min_duration=round(min(durations), 3) if durations else 0.0,
        max_duration=round(max(durations), 3) if durations else 0.0,
    )


def build_eval_set(
    out_dir: str | Path, speaker: Speaker = OUT_OF_DOMAIN_SPEAKER, sentences=SENTENCES
) -> Path:
    """Synthesize `speaker`'s sentences into `out_dir`/<utt>.wav plus `out_dir`/manifest.jsonl.

    The manifest's audio paths are `out_dir` as given joined with the file name: give it relative
    to the workflow root (demo/base_voice_set), as the workflow resolves them from there.
    """
    from whisperforge.core.manifest import make_record, write_jsonl

    out_dir = Path(out_dir)
    records = []
    for offset, index in enumerate(speaker.sentences):
        utt_id = speaker.utt_id(FIRST_UTT_NUMBER + offset)
        wav = out_dir / f"{utt_id}.wav"
        duration = synthesize(sentences[index], speaker.voice, wav)
        text = normalize_transcript_text(sentences[index].split())
        records.append(make_record(utt_id, str(wav), text, duration))
    manifest = out_dir / "manifest.jsonl"
    write_jsonl(manifest, records)
    return manifest


def build_demo_archives(out_dir: str | Path) -> list[ArchiveSummary]:
    """Regenerate `data_aishell.tgz` (target domain) and `base_domain.tgz` under `out_dir`."""
    out_dir = Path(out_dir)
    return [build_aishell_archive(out_dir / name, spk) for name, spk in DEMO_ARCHIVES.items()]
