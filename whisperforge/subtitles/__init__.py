"""Subtitles of recordings: cues from faster-whisper, split and written as SRT/VTT/TXT."""
