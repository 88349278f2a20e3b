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

# ---- builder: uv, and the lock and project metadata every virtualenv below is cut from ------------
FROM python AS builder
ARG UV_VERSION
# The uv cache: BuildKit's cache mount under docker; podman (make images) bind-mounts the host's
# uv cache instead and points UV_CACHE_DIR at it, so a re-run downloads nothing.
ARG UV_CACHE_DIR=/root/.cache/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_CACHE_UPGRADE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=secret,id=ca \
    apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/uv && /opt/uv/bin/pip install -q "uv==${UV_VERSION}" \
 && ln -s /opt/uv/bin/uv /usr/local/bin/uv
WORKDIR /src
COPY requirements.lock pyproject.toml ./
COPY deploy/docker/requirements_for.py deploy/docker/install-requirements.sh /usr/local/lib/datatorag-build/

# ---- one virtualenv per image; dependencies before the code (a code change reinstalls no torch) ---
FROM builder AS slim-venv
ARG UV_CACHE_DIR
RUN --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh slim
COPY libs ./libs
RUN --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh project

FROM builder AS model-venv
ARG UV_CACHE_DIR
RUN --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh model
COPY libs ./libs
RUN --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh project

FROM slim-venv AS dev-servers-venv
ARG UV_CACHE_DIR
RUN --mount=type=cache,id=datatorag-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=ca \
    sh /usr/local/lib/datatorag-build/install-requirements.sh dev-servers

# ---- model: the embedder (CPU, or NVIDIA GPU nodes through the host driver) -------------------------
FROM python AS model
COPY --from=model-venv /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/datatorag-healthcheck
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DATATORAG_DATA_DIR=/data DATATORAG_GATEWAY_HOST=0.0.0.0 DATATORAG_HEALTH_PORT=9100
USER 10001:10001
WORKDIR /home/datatorag
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["datatorag-healthcheck"]
ENTRYPOINT ["datatorag"]
CMD ["serve", "embedder"]

# ---- dev-servers: moto with the stack's queues, bucket and table; a sample FTP server --------------
FROM python AS dev-servers
COPY --from=dev-servers-venv /opt/venv /opt/venv
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
FROM python AS slim
# the parser OCRs scanned PDFs and images with Tesseract (English model)
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=slim-venv /opt/venv /opt/venv
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
