#!/usr/bin/env bash
# Python 3.13 lane: the modules that need no torch, transformers, ctranslate2 or datasets, tested
# on Python 3.13 (what the first Windows user runs). torch has no CPU wheel for 3.13 here and
# PyPI's is a multi-GB CUDA build, so the heavy modules stay with the main (3.11) suite.
#   scripts/test_py313.sh                            # pyenv's 3.13.0
#   PY313=/path/to/python3.13 scripts/test_py313.sh  # another 3.13 interpreter
# Makes .venv-py313 anew, installs the light packages at requirements-dev.txt's pins (srt and
# zhconv publish no wheel at all, for any Python: pip builds their pure-Python sdists), the
# project with --no-deps, byte-compiles the code with warnings as errors (invalid escapes and
# other syntax that 3.13 rejects or warns on, in the modules it cannot import too), then runs the
# light tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PY313="${PY313:-${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13.0/bin/python}"
if ! [ -x "$PY313" ]; then
  echo "test_py313.sh: no Python 3.13 at $PY313 (set PY313=/path/to/python3.13)" >&2
  exit 1
elif ! "$PY313" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then
  echo "test_py313.sh: $PY313 is not Python 3.13 (set PY313=/path/to/python3.13)" >&2
  exit 1
fi

# What the tested modules and tests import, and their tools (ruff, snakefmt: tests/test_lint.py).
LIGHT=(charset-normalizer cn2an filelock grimp huggingface_hub import-linter jiwer jsonschema
  matplotlib numpy psutil pysubs2 pytest PyYAML requests ruff scipy snakefmt snakemake soundfile srt
  tqdm webvtt-py zhconv)
pins=()
for name in "${LIGHT[@]}"; do
  # The pin's first field: a comment after it is not part of the requirement.
  pin=$(awk -v want="$name==" 'index($1, want) == 1 { print $1; exit }' requirements-dev.txt)
  if [ -z "$pin" ]; then
    echo "test_py313.sh: $name has no pin in requirements-dev.txt" >&2
    exit 1
  fi
  pins+=("$pin")
done

venv=.venv-py313
"$PY313" -m venv --clear "$venv"
py="$PWD/$venv/bin/python"
export PATH="$PWD/$venv/bin:$PATH"
"$py" -m pip install -q "${pins[@]}"
"$py" -m pip install -q --no-deps -e .
"$py" -W error -m compileall -q -f whisperforge scripts tests

# Whole files that load no heavy package; single tests of files that otherwise need one.
TESTS=(
  tests/test_aishell.py
  tests/test_audio.py
  tests/test_basemodel.py
  tests/test_cer.py
  tests/test_code.py
  tests/test_config.py
  tests/test_corpora.py
  tests/test_data_rules.py
  tests/test_demodata.py
  tests/test_download.py
  tests/test_envs.py
  tests/test_leftovers.py
  tests/test_lint.py
  tests/test_longform.py
  tests/test_manifest.py
  tests/test_plots.py
  tests/test_portable.py
  tests/test_provenance.py
  tests/test_recordings.py
  tests/test_report.py
  tests/test_report_corpora.py
  tests/test_reruns.py
  tests/test_score.py
  tests/test_subtitle_files.py
  tests/test_timing.py
  tests/test_hub.py::test_license_from_config_then_the_base_card_then_other
  tests/test_hub.py::test_artifacts_and_datasets
  tests/test_hub.py::test_push_needs_a_repo_id_and_pushes_one_run_or_chooses_among_all
  tests/test_subtitles.py::test_review_puts_the_least_sure_cue_first_and_unscored_cues_last
  tests/test_subtitles.py::test_split_by_characters_and_by_words
  tests/test_subtitles.py::test_formats_escape_and_count_hours
  tests/test_subtitles.py::test_resolve_model_picks_the_run_with_the_lowest_test_cer
)
# Tests of the files above that build a tiny model (torch) or decode through faster-whisper.
HEAVY=(
  "tests/test_audio.py::test_decoding_reads_the_same_stretch_as_training[22050]"
  tests/test_longform.py::test_a_recording_is_scored_through_the_subtitles_path_by_the_step_script
  tests/test_recordings.py::test_a_recording_with_an_odd_name_becomes_windows_report_and_rejected_cues
  tests/test_recordings.py::test_a_cue_past_the_end_of_the_audio_names_file_and_cue_and_writes_nothing
  tests/test_recordings.py::test_a_subtitle_file_in_gb18030_utf16_or_bilingual_ass_keeps_the_utf8_srts_cues
)
deselect=()
for id in "${HEAVY[@]}"; do deselect+=(--deselect "$id"); done
exec "$py" -m pytest -q "${TESTS[@]}" "${deselect[@]}"
