# syntax=docker/dockerfile:1
# The images of DatatoRAG, from one Debian bookworm base (its python3 is 3.11, the project's Python):
#   slim         connector, parser, indexer, query-gateway and `datatorag init`; no torch in it
#   model        the embedder: torch from PyPI, whose wheels carry the CUDA 13 runtime, so the same
#                image runs on CPU and on NVIDIA GPU nodes (host driver >= 580; README)
#   dev-servers  the compose stack's development servers: moto (SQS, S3, DynamoDB), a sample FTP
#
#   make images                                          # podman, local base, cached wheels (CI)
#   docker build -t datatorag:latest .                   # slim (the default target)
#   docker build --target model -t datatorag-model:latest .
#   docker run datatorag:latest serve parser | indexer | connector | query-gateway
#   docker run datatorag-model:latest                    # serve embedder
# BASE_IMAGE: any Debian bookworm; CI builds its own from debootstrap (scripts/containers/base-image.sh)
# because no image registry is reachable there. Python packages are exactly requirements.lock's pins
# (deploy/docker/requirements_for.py picks each image's part), so images run what the tests ran.
# HTTPS through an intercepting proxy: give its CA as a build secret, never baked in:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .
# The production embedding model is never baked in: mount it (e.g. /models/embeddinggemma-300m)
# and set DATATORAG_EMBEDDING_MODEL to that directory.

ARG BASE_IMAGE=debian:bookworm-slim
ARG UV_VERSION=0.13.9

# ---- python: Debian's CPython 3.11, CA roots, the unprivileged user ---------------------------------
FROM ${BASE_IMAGE} AS python
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
 && groupadd --system --gid 10001 datatorag \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/datatorag --create-home datatorag \
 && mkdir -p /data /models && chown datatorag:datatorag /data

# ---- builder: uv, and each image's requirement list cut from the lock --------------------------
FROM python AS builder
ARG UV_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=secret,id=ca \
    apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/uv && /opt/uv/bin/pip install -q "uv==${UV_VERSION}"
COPY requirements.lock pyproject.toml /src/
COPY deploy/docker/requirements_for.py /usr/local/lib/datatorag-build/
# The lists, not the lock, go into the images: an edit of pyproject.toml's tool settings leaves
# them equal, so no dependency layer (torch) is rebuilt for it.
RUN for image in slim model dev-servers; do \
      python3 /usr/local/lib/datatorag-build/requirements_for.py "$image" \
        /src/pyproject.toml /src/requirements.lock >"/src/$image.txt" || exit 1; \
    done

# ---- the images install straight into their own /opt/venv: one layer per dependency set, then
# the project in a small layer of its own (a code change rebuilds only that one, never torch).
# uv comes from the builder by a bind mount and the wheels from the uv cache: BuildKit's cache
# mount under docker; podman (make images) bind-mounts the host's uv cache and points
# UV_CACHE_DIR at it, so a re-run downloads nothing.
FROM python AS slim-deps
ARG UV_CACHE_DIR=/root/.cache/uv
COPY --from=builder /src/slim.txt /tmp/requirements.txt
COPY deploy/docker/install-requirements.sh /usr/local/lib/datatorag-build/
RUN --mount=type=bind,from=builder,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh requirements /tmp/requirements.txt

# ---- model: the embedder (CPU, or NVIDIA GPU nodes through the host driver) -------------------------
FROM python AS model
ARG UV_CACHE_DIR=/root/.cache/uv
COPY --from=builder /src/model.txt /tmp/requirements.txt
COPY deploy/docker/install-requirements.sh /usr/local/lib/datatorag-build/
RUN --mount=type=bind,from=builder,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh requirements /tmp/requirements.txt
COPY pyproject.toml /tmp/src/
COPY libs /tmp/src/libs
RUN --mount=type=bind,from=builder,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh project /tmp/src
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/datatorag-healthcheck
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DATATORAG_CACHE=/tmp/datatorag \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DATATORAG_DATA_DIR=/data DATATORAG_GATEWAY_HOST=0.0.0.0 DATATORAG_HEALTH_PORT=9100
USER 10001:10001
WORKDIR /home/datatorag
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["datatorag-healthcheck"]
ENTRYPOINT ["datatorag"]
CMD ["serve", "embedder"]

# ---- dev-servers: moto with the stack's queues, bucket and table; a sample FTP server --------------
FROM slim-deps AS dev-servers
ARG UV_CACHE_DIR=/root/.cache/uv
COPY --from=builder /src/dev-servers.txt /tmp/requirements.txt
RUN --mount=type=bind,from=builder,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh requirements /tmp/requirements.txt
COPY pyproject.toml /tmp/src/
COPY libs /tmp/src/libs
RUN --mount=type=bind,from=builder,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh project /tmp/src
COPY --chmod=0755 deploy/docker/moto_server.py /usr/local/bin/datatorag-moto
COPY --chmod=0755 deploy/docker/sample_ftp.py /usr/local/bin/datatorag-sample-ftp
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/datatorag
EXPOSE 5000 2121
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=5 CMD ["datatorag-moto", "--check"]
ENTRYPOINT []
CMD ["datatorag-moto"]

# ---- slim (the default target): every service that runs no model ----------------------------------
FROM slim-deps AS slim
ARG UV_CACHE_DIR=/root/.cache/uv
# the parser OCRs scanned PDFs and images with Tesseract (English model)
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY pyproject.toml /tmp/src/
COPY libs /tmp/src/libs
RUN --mount=type=bind,from=builder,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh project /tmp/src
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/datatorag-healthcheck
# Bind all interfaces inside the container; model weights only ever come from local directories.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    DATATORAG_DATA_DIR=/data DATATORAG_GATEWAY_HOST=0.0.0.0 DATATORAG_HEALTH_PORT=9100
USER 10001:10001
WORKDIR /home/datatorag
EXPOSE 8080 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["datatorag-healthcheck"]
ENTRYPOINT ["datatorag"]
CMD ["serve", "query-gateway"]
