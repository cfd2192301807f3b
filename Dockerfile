# The timebucket service image: `timebucket serve` by default, `timebucket migrate up` on demand.
# Needs BuildKit (the default builder since Docker 23): the cargo registry and target folder are
# cache mounts, so a rebuild compiles only what changed.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the benches (and the examples are its targets too): cargo wants them present.
COPY benches ./benches
COPY examples ./examples
# The binary leaves the cache mount by a copy: a mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin timebucket \
    && cp target/release/timebucket /usr/local/bin/timebucket

# The runtime: Debian's slim image, the binary, the migrations, and an unprivileged user. No
# package is installed: the binary needs only glibc, and the health check is bash's /dev/tcp.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/timebucket \
        --shell /usr/sbin/nologin timebucket \
    && mkdir -p /var/lib/timebucket /var/lib/timebucket-token \
    && chown timebucket:timebucket /var/lib/timebucket /var/lib/timebucket-token
WORKDIR /app
COPY --from=build /usr/local/bin/timebucket /usr/local/bin/timebucket
COPY migrations ./migrations
# Listening beyond loopback needs a token: the first start writes one (every scope) to the volume,
# e.g. `docker compose exec timebucket cat /var/lib/timebucket/token` (README "Security").
ENV TIMEBUCKET_LISTEN=0.0.0.0:8080 \
    TIMEBUCKET_DATA_DIR=/var/lib/timebucket \
    TIMEBUCKET_BOOTSTRAP_TOKEN_FILE=/var/lib/timebucket/token
# The WAL (and the embedded store, when no CQL cluster is configured): a volume, owned by the user.
VOLUME /var/lib/timebucket
USER timebucket
EXPOSE 8080
# Healthy = /readyz answers 200 (store reachable, last flush fine, WAL writable).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["bash", "-c", \
    "exec 3<>/dev/tcp/127.0.0.1/${TIMEBUCKET_LISTEN##*:} && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["timebucket"]
CMD ["serve"]
