// The container healthcheck probe, built into both service images by
// compose/Dockerfile.*. Standard library only and deliberately not in go.work:
// it is built on its own (GOWORK=off, CGO_ENABLED=0) as a static binary.
module github.com/stockfence/stockfence/compose/healthcheck

go 1.26.0
