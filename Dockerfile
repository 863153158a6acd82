# batchd's container image.
#
#   podman build --format docker -t batchd .   (--format docker keeps HEALTHCHECK)
#   docker build -t batchd .
#   docker run -d --name batchd -p 127.0.0.1:8080:8080 -v batchd-data:/data batchd
#
# Two stages on debian:bookworm-slim: the first compiles with the -dev
# packages; the second has the runtime libraries, the stripped binary and
# an empty handlers file, nothing else. README.md ("Docker") tells how to
# pass a token and a handlers file.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make pkg-config \
      libmicrohttpd-dev libcjson-dev libsqlite3-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads, so that editing a test or a doc does not
# rebuild the image.
COPY Makefile VERSION ./
COPY tools/ tools/
COPY docs/openapi.json docs/
COPY include/ include/
COPY lib/ lib/
COPY db/ db/
COPY workers/ workers/
COPY server/ server/
COPY web/ web/
RUN make -j"$(nproc)" batchd && strip batchd && ./batchd --version

FROM debian:bookworm-slim
# The shared libraries batchd links (libcurl for its client commands and
# the health check), and a system user that owns the data volume.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libcjson1 libsqlite3-0 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin batchd \
 && mkdir -p /data /etc/batchd \
 && chown batchd:batchd /data
COPY --from=build /src/batchd /usr/local/bin/batchd
# Mount your own over it: -v ./handlers.json:/etc/batchd/handlers.json:ro
COPY dist/handlers.json /etc/batchd/handlers.json

# Configuration is the BATCHD_* environment, as everywhere. Inside the
# container (only here) the server listens on every address; publish the
# port on the host address you want (-p 127.0.0.1:8080:8080).
# BATCHD_GRACE is 8 s so that running tasks get their grace period within
# the 10 s that `docker stop` waits before SIGKILL; raise both together
# (docker run --stop-timeout 130 -e BATCHD_GRACE=120).
ENV BATCHD_LISTEN=0.0.0.0:8080 \
    BATCHD_DB=/data/batchd.db \
    BATCHD_HANDLERS=/etc/batchd/handlers.json \
    BATCHD_GRACE=8
VOLUME /data
WORKDIR /data
EXPOSE 8080
USER batchd

# `batchd health` asks /healthz (open even with a token) on the port of
# BATCHD_LISTEN; no curl needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["batchd", "health"]

# The server runs as PID 1, with no init in front, because it does what
# PID 1 must do:
#  - signals: it blocks SIGTERM and SIGINT and reads them from a signalfd,
#    so the kernel delivers them to it even as PID 1 (which drops signals
#    that have the default action), and `docker stop` starts the graceful
#    shutdown: no new tasks, running ones get BATCHD_GRACE seconds, then
#    exit 0.
#  - zombies: it reaps every child with waitpid(-1, WNOHANG) on SIGCHLD,
#    including orphans that command handlers leave behind (a `sh -c
#    'sleep 30 &'`), which the kernel hands to PID 1.
#  - when it exits the kernel kills whatever is left in the container.
# tests/docker/smoke.sh checks both the shutdown and the reaping in a real
# container, so tini or dumb-init would only add a process.
STOPSIGNAL SIGTERM
ENTRYPOINT ["batchd"]
CMD ["serve"]
