"""Models: the tiny demo model, the hub fetch, the CTranslate2 import, merging adapters, the
CTranslate2 export."""
