"""The faster-whisper (CTranslate2) runtime: decoding manifests."""
