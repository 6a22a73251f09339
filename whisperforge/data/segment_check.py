"""Does a cue's text belong to its audio? Scored with a seed model's likelihood of the text.

A seed model (by default the base model) may be poor on the user's voices, which is why they
fine-tune: a correct cue on an accented voice can decode at 50 % CER while a wrong cue decodes at
near 100 %, so a free-running CER cut would throw away good data or keep bad. Instead the model
scores the *given* text (teacher-forced, mean log-probability per token, end of text included)
against the cue's own audio and against the audio of other cues of the same recording (its
neighbours first, then a seeded draw). A text that belongs to its audio fits it better than it
fits other audio on average, by a margin, however weak the model is on the voice; a wrong text
fits its own audio no better than any other, and a cue shifted onto its neighbour's sentence fits
the neighbour best.

How large a margin is depends on the seed model: tenths of a nat per token for the demo's tiny
model, nats for a real Whisper. The decision therefore reads the margin relative to the spread of
the text's fit over the other audio (`relative_margin`, a z-score): a text that belongs to its
audio is an outlier among its fits, a wrong one is not, whatever the model's scale.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisperforge.core.audio import SAMPLE_RATE, audio_frames

log = logging.getLogger(__name__)

BATCH = 8  # audio clips encoded at once, texts decoded at once


class TextFit:
    """A seed Whisper that scores texts against audio (mean log-probability per token)."""

    def __init__(self, model_dir: str | Path, device: str, *, language: str | None, task: str):
        self.processor = WhisperProcessor.from_pretrained(str(model_dir))
        self.processor.tokenizer.set_prefix_tokens(
            language=language, task=task, predict_timestamps=False
        )
        dtype = torch.float16 if device == "cuda" else torch.float32
        self.model = WhisperForConditionalGeneration.from_pretrained(
            str(model_dir), dtype=dtype
        ).to(device)
        self.model.eval()
        self.device, self.dtype = device, dtype
        # Tokens before the text (<|startoftranscript|><|zh|><|transcribe|><|notimestamps|>):
        # given, not scored. The text's first token is predicted at the prefix's last position.
        self.prefix = len(self.processor.tokenizer("").input_ids) - 1

    @torch.inference_mode()
    def encode(self, audios: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The encoder's output for each clip (each padded to Whisper's 30 s window)."""
        out: list[torch.Tensor] = []
        for i in range(0, len(audios), BATCH):
            clips = list(audios[i : i + BATCH])
            features = self.processor.feature_extractor(
                clips, sampling_rate=SAMPLE_RATE, return_tensors="pt"
            ).input_features
            # As faster-whisper feeds the model (the way it will be used): the log-mel after
            # the clip is zeros, not the log-mel of silence.
            for row, clip in enumerate(clips):
                features[row, :, audio_frames(len(clip)) :] = 0.0
            features = features.to(self.device, self.dtype)
            hidden = self.model.model.encoder(features).last_hidden_state
            out.extend(hidden.unbind(0))
        return out

    @torch.inference_mode()
    def log_prob(self, encoded: torch.Tensor, texts: Sequence[str]) -> list[float]:
        """Mean log-probability per token of each text (and its end) given one clip."""
        scores: list[float] = []
        pad = self.processor.tokenizer.pad_token_id
        for i in range(0, len(texts), BATCH):
            ids = [self.processor.tokenizer(t).input_ids for t in texts[i : i + BATCH]]
            width = max(len(x) for x in ids)
            tokens = torch.full((len(ids), width), pad, dtype=torch.long)
            for row, x in enumerate(ids):
                tokens[row, : len(x)] = torch.tensor(x)
            tokens = tokens.to(self.device)
            hidden = encoded.unsqueeze(0).expand(len(ids), -1, -1)
            logits = self.model(
                encoder_outputs=(hidden,), decoder_input_ids=tokens[:, :-1]
            ).logits.float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]
            for row, x in enumerate(ids):
                scored = logp[row, self.prefix - 1 : len(x) - 1]  # the text's tokens, its end
                scores.append(float(scored.mean()))
        return scores


def others_for(index: int, count: int, candidates: Sequence[int], seed: int) -> list[int]:
    """The other clips cue `index` is compared with: its neighbours among `candidates`, then a
    seeded draw of the rest, `count` in all."""
    pos = candidates.index(index)
    near = [candidates[p] for p in (pos - 1, pos + 1) if 0 <= p < len(candidates)]
    rest = [c for c in candidates if c != index and c not in near]
    random.Random(seed * 100_003 + index).shuffle(rest)
    return (near + rest)[:count]


def fit_margins(
    fit: TextFit, audios: Sequence[np.ndarray], texts: Sequence[str], *, others: int, seed: int
) -> list[dict[str, float]]:
    """For each (audio, text) cue: its text's fit to its own audio, its mean fit to the other
    cues' audio, and the margin between them (own - mean of the others; nats per token).

    The mean, not the best of the others: a weak seed model's fit to unheard voices is noisy, and
    the best of several noisy values is high by chance (measured on the demo's base model and an
    unheard voice: against the best other, correct cues' median margin is 0.00; against the mean,
    0.20, with wrong texts at -0.01)."""
    n = len(audios)
    candidates = list(range(n))
    compare = {i: others_for(i, others, candidates, seed) for i in range(n)} if n > 1 else {0: []}
    # Texts to score per audio: its own and those of the cues that compare with it.
    wanted: dict[int, list[int]] = {j: [j] for j in range(n)}
    for i, js in compare.items():
        for j in js:
            wanted[j].append(i)
    encoded = fit.encode(audios)
    score: dict[tuple[int, int], float] = {}
    for j, text_ids in wanted.items():
        values = fit.log_prob(encoded[j], [texts[i] for i in text_ids])
        score.update({(j, i): v for i, v in zip(text_ids, values, strict=True)})
    rows = []
    for i in range(n):
        own = score[(i, i)]
        others_fit = [score[(j, i)] for j in compare[i]]
        other = sum(others_fit) / len(others_fit) if others_fit else float("-inf")
        spread = float(np.std(others_fit)) if len(others_fit) > 1 else None
        rows.append(
            {
                "fit": round(own, 4),
                "fit_elsewhere": round(other, 4) if compare[i] else None,
                "margin": round(own - other, 4) if compare[i] else None,
                # The margin in units of how much the text's fit varies from one audio to
                # another: scale-free, so one threshold holds for a weak seed model (margins of
                # tenths of a nat) and a strong one (nats) alike.
                "relative_margin": round((own - other) / spread, 4) if spread else None,
            }
        )
    log.info("scored %d cues against %d other clips each", n, others)
    return rows
