# The timebucket service image: `timebucket serve` by default, `timebucket migrate up` on demand.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin timebucket

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/timebucket /usr/local/bin/timebucket
COPY migrations ./migrations
ENV TIMEBUCKET_LISTEN=0.0.0.0:8080 \
    TIMEBUCKET_DATA_DIR=/var/lib/timebucket
VOLUME /var/lib/timebucket
EXPOSE 8080
ENTRYPOINT ["timebucket"]
CMD ["serve"]
