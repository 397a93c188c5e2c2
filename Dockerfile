# syntax=docker/dockerfile:1
# Multi-stage build of the collector and the demo from the workspace.
#   docker build --target collector -t agentrace-collector .   (--build-arg PGO=0: no profile)
#   docker build --target demo -t agentrace-demo .

FROM rust:1-bookworm AS build
# The collector is built with profile-guided optimisation (scripts/build-pgo: an instrumented
# build runs a training load on loopback, then the release build uses its profile), which
# takes about two release builds; --build-arg PGO=0 builds it plainly.
ARG PGO=1
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p agentrace-demo \
 && mkdir -p /out \
 && cp target/release/agentrace-demo target/release/agentrace-batch-job /out/ \
 && if [ "$PGO" = 1 ]; then \
      cp "$(scripts/build-pgo | tail -n 1)" /out/agentrace-collector; \
    else \
      cargo build --release --locked -p agentrace-collector \
      && cp target/release/agentrace-collector /out/; \
    fi

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

FROM runtime AS collector
COPY --from=build /out/agentrace-collector /usr/local/bin/agentrace-collector
# OTLP/gRPC, OTLP/HTTP, /metrics
EXPOSE 4317 4318 9101
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fs http://127.0.0.1:9101/readyz || exit 1
ENTRYPOINT ["agentrace-collector"]

FROM runtime AS demo
COPY --from=build /out/agentrace-demo /out/agentrace-batch-job /usr/local/bin/
ENTRYPOINT ["agentrace-demo"]
