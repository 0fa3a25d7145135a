// Package composecheck holds the static checks of the Docker Compose
// deployment in compose/: compose.yaml (loaded with compose-go, as docker
// compose does), the service Dockerfiles and their ignore files, checked
// against the contract of the design (every variable each service reads, the
// Kafka topics, health checks, start order). No Docker engine is needed; the
// checks are in compose_test.go.
package composecheck
