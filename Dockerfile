# syntax=docker/dockerfile:1
# One image for all five services; the command picks the service:
#   docker build -t datatorag .                                  # default: torch as locked
#   docker build --build-arg TORCH=cpu -t datatorag:cpu .        # CPU-only torch, ~3 GB smaller
#   docker build --target gpu -t datatorag:gpu .                 # CUDA base, for the GPU embedder
#   docker run datatorag serve parser | embedder | indexer | connector | query-gateway
# The production embedding model is never baked in: mount it (e.g. /models/embeddinggemma-300m)
# and set DATATORAG_EMBEDDING_MODEL to that directory.

ARG PYTHON_IMAGE=python:3.11-slim
# torch's Linux wheels bundle the CUDA user-space libraries; the CUDA base image brings the
# NVIDIA container runtime settings and matches the driver the wheels were built for (CUDA 13).
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-base-ubuntu24.04
ARG UV_VERSION=0.13.8

# ---- builder: the virtualenv at /opt/venv -------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION
# locked: exactly requirements.lock (CUDA-capable torch from PyPI) | cpu: CPU-only torch
ARG TORCH=locked
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "uv==${UV_VERSION}"
WORKDIR /src
COPY requirements.lock pyproject.toml ./
COPY deploy/docker/install-python-deps.sh /usr/local/bin/install-python-deps
# Dependencies first, in their own layer: code changes do not reinstall torch.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/venv --python /usr/local/bin/python3.11 \
 && TORCH_CPU_INDEX="${TORCH_CPU_INDEX}" install-python-deps "${TORCH}" requirements.lock /opt/venv/bin/python
COPY libs ./libs
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python --no-deps . \
 && /opt/venv/bin/datatorag --help >/dev/null

# ---- gpu-builder: the same virtualenv on the CUDA base, with a standalone CPython 3.11 ------------
FROM ${CUDA_IMAGE} AS gpu-builder
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_INSTALL_DIR=/opt/python
COPY --from=builder /usr/local/bin/uv /usr/local/bin/uv
WORKDIR /src
COPY requirements.lock pyproject.toml ./
COPY deploy/docker/install-python-deps.sh /usr/local/bin/install-python-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    uv python install 3.11 \
 && uv venv /opt/venv --python 3.11 \
 && install-python-deps locked requirements.lock /opt/venv/bin/python
COPY libs ./libs
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python --no-deps . \
 && /opt/venv/bin/datatorag --help >/dev/null

# ---- gpu: the embedder on GPU nodes (bf16) --------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
RUN groupadd --system --gid 10001 datatorag \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/datatorag --create-home datatorag \
 && mkdir -p /data /models && chown datatorag:datatorag /data
COPY --from=gpu-builder /opt/python /opt/python
COPY --from=gpu-builder /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/datatorag-healthcheck
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DATATORAG_DATA_DIR=/data DATATORAG_GATEWAY_HOST=0.0.0.0 DATATORAG_HEALTH_PORT=9100 \
    DATATORAG_EMBEDDING_DEVICE=cuda
USER 10001:10001
WORKDIR /home/datatorag
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["datatorag-healthcheck"]
ENTRYPOINT ["datatorag"]
CMD ["serve", "embedder"]

# ---- runtime (default target): every service on CPU -----------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# the parser OCRs scanned PDFs and images with Tesseract (English model)
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 datatorag \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/datatorag --create-home datatorag \
 && mkdir -p /data /models && chown datatorag:datatorag /data
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/datatorag-healthcheck
# Bind all interfaces inside the container; model weights only ever come from local directories.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    DATATORAG_DATA_DIR=/data DATATORAG_GATEWAY_HOST=0.0.0.0 DATATORAG_HEALTH_PORT=9100
USER 10001:10001
WORKDIR /home/datatorag
EXPOSE 8080 8081 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["datatorag-healthcheck"]
ENTRYPOINT ["datatorag"]
CMD ["serve", "query-gateway"]
