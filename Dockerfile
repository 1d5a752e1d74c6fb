# coach as a container: the API on port 8000, sessions in a SQLite file on the /data volume.
#
#   docker build -t coach .
#   docker run -d --name coach -p 8000:8000 -v coach-data:/data coach
#   curl http://127.0.0.1:8000/healthz
#
# Every setting is a COACH_ environment variable (`docker run --rm coach coach --help`), e.g.
#   -e COACH_LLM_BASE_URL=http://host.docker.internal:8080/v1 -e COACH_LLM_MODEL=...
#   -e COACH_DATABASE_URL=postgresql://user:password@db:5432/coach -e COACH_WORKERS=4
# A host folder mounted on /data must be writable by uid 10001 (the image's `coach` user).

# --- build: install coach and its dependencies into a virtualenv ---------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv

WORKDIR /src
# What the wheel is built from: the package, and the content folders it ships as coach/_data.
COPY pyproject.toml README.md ./
COPY src ./src
COPY prompts ./prompts
COPY rubrics ./rubrics
COPY questions ./questions
RUN /opt/venv/bin/pip install .

# --- run: the same slim base, the virtualenv, a non-root user --------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COACH_HOST=0.0.0.0 \
    COACH_PORT=8000 \
    COACH_DATA_DIR=/data

# A numeric uid, so orchestrators can check the image runs as non-root (runAsNonRoot).
RUN groupadd --system --gid 10001 coach \
    && useradd --system --uid 10001 --gid coach --create-home --home-dir /home/coach \
        --shell /usr/sbin/nologin coach \
    && mkdir /data \
    && chown coach:coach /data

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/coach
# Declared after /data is made and chowned: a new volume starts as that empty, writable folder.
VOLUME ["/data"]
EXPOSE 8000

# The slim image has no curl; Python's urllib does the same job. Fails on anything but a 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('COACH_PORT', '8000'), timeout=4)"]

# Exec form: coach (uvicorn) is PID 1 and gets `docker stop`'s SIGTERM for a graceful exit.
CMD ["coach", "serve"]
