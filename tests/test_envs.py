"""Every rule has log:, conda:; each env file parses and provides what its scripts import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml
from helpers import ROOT

# import name -> conda/pip package name
PACKAGE_OF = {
    "yaml": "pyyaml",
    "soundfile": "pysoundfile",
    "torch": "pytorch",
    "faster_whisper": "faster-whisper",
    "huggingface_hub": "huggingface_hub",
    "matplotlib": "matplotlib-base",
    "webvtt": "webvtt-py",
    "charset_normalizer": "charset-normalizer",
}
STDLIB_OR_OURS = {"whisperforge", "_step"}


def rules() -> dict[str, str]:
    """rule name -> its body, from every rules/*.smk."""
    found = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^( *)rule (\w+):\n((?:\1 +.*\n|\s*\n)+)", text, re.M):
            found[match.group(2)] = match.group(3)
    return found


def env_packages(env_file: Path) -> set[str]:
    spec = yaml.safe_load(env_file.read_text())
    names = set()
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            names |= {re.split(r"[=<> \[]", d)[0].lower() for d in dep.get("pip", [])}
        else:
            names.add(re.split(r"[=<> ]", dep)[0].lower())
    return names


def third_party_imports(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Top-level imports of a script, following whisperforge modules it imports."""
    import sys

    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module.startswith("whisperforge"):  # `from whisperforge.stage import module`
                modules += [f"{node.module}.{a.name}" for a in node.names]
        for module in modules:
            top = module.split(".")[0]
            if top == "whisperforge":
                target = ROOT / (module.replace(".", "/") + ".py")
                if target.is_file():  # not a package, nor a name inside a module
                    names |= third_party_imports(target, seen)
            elif top not in sys.stdlib_module_names and top not in STDLIB_OR_OURS:
                names.add(top)
    return names


def test_every_rule_has_log_and_conda_and_heavy_rules_a_benchmark():
    found = rules()
    assert {"extract_aishell", "finetune", "merge", "export_ct2", "transcribe"} <= set(found)
    for name, body in found.items():
        if name == "all":
            continue
        assert "log:" in body, name
        assert "conda:" in body, name
    for heavy in ("extract_aishell", "finetune", "pretrain_base", "merge", "export_ct2"):
        assert "benchmark:" in found[heavy], heavy
    for gpu_rule in ("pretrain_base", "transcribe", "speed"):
        assert "gpu=1" in found[gpu_rule], gpu_rule
    # A run asks for as many devices as it trains with (train.gpus, job_resources).
    assert 'gpu=lambda wc: job_resources(wc.run).get("gpu")' in found["finetune"]
    assert "gpu=" not in found["export_ct2"], "its probe decodes on the CPU"


def test_env_files_parse_and_cover_their_scripts_imports():
    for name, body in rules().items():
        env = re.search(r'conda:\s*\n\s*"\.\./(envs/[\w.]+)"', body)
        script = re.search(r'script:\s*\n\s*"\.\./(scripts/[\w.]+)"', body)
        if not env or not script:
            continue
        packages = env_packages(ROOT / env.group(1))
        for module in third_party_imports(ROOT / script.group(1)):
            wanted = PACKAGE_OF.get(module, module).lower()
            assert wanted in packages, f"rule {name}: {env.group(1)} lacks {wanted}"
