# Multi-stage build of Tessera's binaries. Build from the repository root:
#   docker build -t ghcr.io/tessera-sched/tessera-scheduler:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=v0.0.0-dev
RUN CGO_ENABLED=0 go build \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${VERSION}" \
      -o /out/tessera-scheduler ./cmd/tessera-scheduler && \
    CGO_ENABLED=0 go build -ldflags "-s -w" -o /out/tessera ./cmd/tessera

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tessera-scheduler /usr/local/bin/tessera-scheduler
COPY --from=build /out/tessera /usr/local/bin/tessera
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tessera-scheduler"]
