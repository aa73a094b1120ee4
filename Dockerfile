# One image for every agentnet process: `agentnet operator`, `agentnet agent`,
# `agentnet component NAME`. Wheels are built in the first stage so the final
# image carries no build tools.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY operator operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[operator,runtime]'

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'agentnet[operator,runtime]' \
    && rm -rf /wheels
# One BLAS thread: the topology's eigenvalue check is tiny, and multi-threaded
# BLAS on a busy node made it 60x slower.
ENV OPENBLAS_NUM_THREADS=1
# Non-root, matching the restricted Pod Security Standard the operator applies.
USER 65532:65532
ENTRYPOINT ["agentnet"]
