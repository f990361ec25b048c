# syntax=docker/dockerfile:1
#
# mailhook container image: mailhook-ingest, mailhook-worker, mailhook-api, the mailhook
# CLI, the SQL migrations and the operator console's files, on Debian 12 slim with only
# the runtime libraries, running as an unprivileged user. Build it from the top of the
# project:
#
#   docker build -t mailhook:0.1.0 .
#
# One image runs every program; pick one with the command, e.g.
#
#   docker run -v ./mailhook.ini:/etc/mailhook/mailhook.ini:ro mailhook:0.1.0 \
#     mailhook-worker --config /etc/mailhook/mailhook.ini --instance worker-1
#
# The default command is the ingest. Before a program starts, the entrypoint checks its
# config with `mailhook config check` and stops with every problem listed if there are
# any. Every program reads /etc/mailhook/mailhook.ini
# (mount yours there) and honours MAILHOOK_KAFKA_BROKERS and MAILHOOK_PG_DSN; libpq
# also reads PGPASSWORD. deploy/README.md describes the compose stack, the Kubernetes
# manifests and the systemd units built around this image.

# Pin a Debian 12 point release (or, better, a digest: debian:12.11-slim@sha256:...).
# The build and the runtime stages must use the same release so that the runtime
# libraries are the ones the binaries were linked against.
ARG DEBIAN_IMAGE=debian:12.11-slim

# ---------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build

# The same -dev packages as deploy/local/lib.sh, less libcmocka-dev: the image builds no
# unit tests. Versions come from the pinned Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libevent-dev libjansson-dev libinih-dev libssl-dev libpq-dev libjemalloc-dev \
 && rm -rf /var/lib/apt/lists/*

# The programs' default [postgres] migrations_dir is <source dir>/migrations: building
# in /usr/share/mailhook makes that default the directory where the runtime stage keeps
# the migrations, so `mailhook migrate` works with a config that does not set it.
WORKDIR /usr/share/mailhook
COPY CMakeLists.txt ./
COPY shared/ shared/
COPY ingest/ ingest/
COPY pipeline/ pipeline/
COPY store/ store/
COPY worker/ worker/
COPY api/ api/
COPY cli/ cli/
COPY migrations/ migrations/

# Prefix /usr: mailhook-api's compiled-in console directory is then
# /usr/share/mailhook/console, where the runtime stage keeps the console's files.
RUN cmake -S . -B /tmp/build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMH_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /tmp/build -j"$(nproc)" \
      --target mailhook-ingest mailhook-worker mailhook-api mailhook \
 && install -d /out \
 && install -s -m 0755 /tmp/build/mailhook-ingest /tmp/build/mailhook-worker \
      /tmp/build/mailhook-api /tmp/build/mailhook /out/

# ---------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime

ARG MAILHOOK_VERSION=0.1.0
LABEL org.opencontainers.image.title="mailhook" \
      org.opencontainers.image.description="Webhook bridge for email delivery events: provider webhooks to Kafka, normalized and deduplicated" \
      org.opencontainers.image.version="${MAILHOOK_VERSION}"

# Runtime libraries only (one package per shared library the programs link:
# tests/deploy/validate checks this list against the binaries), CA certificates for
# Kafka and PostgreSQL over TLS, and curl for the container health checks.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libevent-2.1-7 libevent-pthreads-2.1-7 libevent-openssl-2.1-7 libjansson4 \
      libinih1 libssl3 libpq5 libjemalloc2 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mailhook \
 && useradd --system --uid 10001 --gid mailhook --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin mailhook \
 && install -d -m 0755 /etc/mailhook

COPY --from=build /out/ /usr/local/bin/
COPY --from=build /usr/share/mailhook/migrations/ /usr/share/mailhook/migrations/
COPY --from=build /usr/share/mailhook/api/console/ /usr/share/mailhook/console/
# Runs `mailhook config check` on the program's --config file before mailhook-ingest,
# mailhook-worker or mailhook-api starts (deploy/docker/entrypoint.sh), then execs it.
COPY deploy/docker/entrypoint.sh /usr/local/bin/mailhook-entrypoint

# `mailhook` (the CLI) finds its config here without --config; the servers always get
# --config on their command line.
ENV MAILHOOK_CONFIG=/etc/mailhook/mailhook.ini

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# mailhook-ingest ([ingest] listen), mailhook-api ([api] listen) and mailhook-worker's
# metrics (--metrics-listen, as deploy/ sets it).
EXPOSE 8080 8081 9102

# For the default command (the ingest on port 8080). Set MAILHOOK_HEALTHCHECK_URL for
# an api container (http://127.0.0.1:8081/readyz); for a worker started with
# --metrics-listen 0.0.0.0:9102, http://127.0.0.1:9102/healthz (without it, disable the
# check: compose `healthcheck: {disable: true}`). Kubernetes ignores this and
# uses the probes in deploy/k8s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null --max-time 2 \"${MAILHOOK_HEALTHCHECK_URL:-http://127.0.0.1:8080/readyz}\" || exit 1"]

# SIGTERM starts each program's graceful shutdown (the ingest drains for up to 10 s).
# The entrypoint execs the program, so the signal reaches it. A command given to
# `docker run` or compose replaces CMD and still goes through the entrypoint; Kubernetes
# manifests give only `args` for the same reason (`command` would bypass it).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailhook-entrypoint"]
CMD ["mailhook-ingest", "--config", "/etc/mailhook/mailhook.ini"]
