# syntax=docker/dockerfile:1
#
# Production image for the phone-assistant worker. LiveKit Cloud builds this
# file on `lk agent deploy`; self-hosters build it with `docker build .`.
# docs/deploy.md explains both.

# uv's own image (Debian slim, Python 3.11 = the project's floor, uv on PATH),
# as in LiveKit's templates. Pinned to a uv release so rebuilds are repeatable;
# bump it with the uv the team uses, as `uv sync --locked` reads our uv.lock.
ARG BASE_IMAGE=ghcr.io/astral-sh/uv:0.13.8-python3.11-bookworm-slim
FROM ${BASE_IMAGE}

# Logs must reach `lk agent logs` / `docker logs` even if the worker dies.
ENV PYTHONUNBUFFERED=1
# .pyc files at build time: a new replica takes calls sooner.
ENV UV_COMPILE_BYTECODE=1
# The cache mount is another filesystem, so hard links would fail.
ENV UV_LINK_MODE=copy
# Use the image's Python; never fetch one at build or run time.
ENV UV_PYTHON_DOWNLOADS=never

# The worker runs unprivileged. -l: don't grow /var/log/lastlog for a high UID.
ARG UID=10001
RUN useradd -l --create-home --uid "${UID}" --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies only: this layer is rebuilt when pyproject.toml or uv.lock
# changes, not on every code edit. --no-install-project because the project
# is not a package ([tool.uv] package = false); nothing else to install later.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

# The venv first on PATH: run its python directly rather than `uv run`, which
# would re-check the lockfile and want a writable cache on every start.
ENV PATH="/app/.venv/bin:${PATH}"

# Messages and call records (keeping.py, store.py) live in one SQLite file here,
# the one place the worker writes: mount a volume on it so they outlive the container.
ENV ASSISTANT_DATA_DIR=/data
RUN mkdir -p /data && chown "${UID}" /data
VOLUME ["/data"]

# Code and venv stay owned by root (read-only to the worker); everything from
# here runs as the worker's user, so model files land in *its* home cache.
# Numeric, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER ${UID}

# Fetch plugin model files now so no replica downloads at run time. The module
# form is the framework's current command (`agent.py download-files` is
# deprecated since livekit-agents 1.5.10): it finds installed plugins without
# importing our code, so it runs before COPY and stays cached across code edits.
RUN python -m livekit.agents download-files

COPY . .

# 8081: the worker's HTTP health check in production mode (GET / -> 200 OK),
# for liveness probes. The worker needs no other inbound port: it dials out to
# LiveKit over a WebSocket.
EXPOSE 8081

# `start` is production mode: load_threshold 0.7, drain on SIGTERM (see
# docs/deploy.md, S3, for the matching grace period). Through agent.py, not
# `python -m livekit.agents start`: that imports agent.py as a module and so
# skips main(), which validates the config and registers the call handler.
CMD ["python", "agent.py", "start"]
