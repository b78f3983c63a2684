# Multi-stage build of Tessera's images. From the repository root:
#   docker build -t ghcr.io/tessera-sched/tessera-scheduler:dev .
#   docker build --target agent -t ghcr.io/tessera-sched/tessera-agent:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=v0.0.0-dev
# The scheduler and CLI are static; the agent needs cgo (go-nvml loads
# libnvidia-ml.so with dlopen, provided at run time by the NVIDIA container
# runtime).
RUN CGO_ENABLED=0 go build \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${VERSION}" \
      -o /out/tessera-scheduler ./cmd/tessera-scheduler && \
    CGO_ENABLED=0 go build -ldflags "-s -w" -o /out/tessera ./cmd/tessera && \
    CGO_ENABLED=1 go build -ldflags "-s -w" -o /out/tessera-agent ./cmd/tessera-agent

FROM gcr.io/distroless/base-debian12:nonroot AS agent
COPY --from=build /out/tessera-agent /usr/local/bin/tessera-agent
ENTRYPOINT ["/usr/local/bin/tessera-agent"]

FROM gcr.io/distroless/static-debian12:nonroot AS scheduler
COPY --from=build /out/tessera-scheduler /usr/local/bin/tessera-scheduler
COPY --from=build /out/tessera /usr/local/bin/tessera
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tessera-scheduler"]
