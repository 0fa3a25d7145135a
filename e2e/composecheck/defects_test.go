package composecheck_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// defects break a copy of compose/ in one way each; the named check must
// notice. This proves the checks can fail, and keeps proving it as the files
// change: a defect whose text is no longer in its file fails as stale.
var defects = []struct {
	name, file, old, new, check string
}{
	// compose.yaml: environment
	{"listens on loopback", "compose.yaml",
		"PRODUCT_HTTP_ADDR: 0.0.0.0:8081", "PRODUCT_HTTP_ADDR: 127.0.0.1:8081", "environment"},
	{"contract variable missing", "compose.yaml",
		"      STUCK_AFTER: ${STUCK_AFTER:-30s}\n", "", "environment"},
	{"product KAFKA_BROKERS missing", "compose.yaml",
		"      KAFKA_BROKERS: kafka:9092\n", "", "environment"},
	{"misspelt variable", "compose.yaml",
		"      ORDER_SYNC_BUDGET: ${ORDER_SYNC_BUDGET:-3s}\n",
		"      ORDER_SYNC_BUDGET: ${ORDER_SYNC_BUDGET:-3s}\n      ORDER_SYNC_BUGDET: 3s\n", "environment"},
	{"DSN names the wrong database", "compose.yaml",
		"/products?parseTime=true", "/orders?parseTime=true", "environment"},
	{"DSN without parseTime", "compose.yaml", "/orders?parseTime=true", "/orders", "environment"},
	{"DSN on localhost", "compose.yaml", "@tcp(mysql:3306)/orders", "@tcp(127.0.0.1:3306)/orders", "environment"},
	{"DSN does not parse", "compose.yaml", "@tcp(mysql:3306)/orders", "@tcp(mysql:3306", "environment"},
	{"DSN with a literal password", "compose.yaml",
		"root:${MYSQL_ROOT_PASSWORD:-stockfence}@tcp(mysql:3306)/orders", "root:secret@tcp(mysql:3306)/orders", "environment"},
	{"PRODUCT_URL wrong port", "compose.yaml",
		"PRODUCT_URL: http://productservice:8081", "PRODUCT_URL: http://productservice:8080", "environment"},
	{"PRODUCT_URL wrong host", "compose.yaml",
		"PRODUCT_URL: http://productservice:8081", "PRODUCT_URL: http://localhost:8081", "environment"},
	{"duration not Go syntax", "compose.yaml", "${PRODUCT_TIMEOUT:-1s}", "${PRODUCT_TIMEOUT:-1 second}", "environment"},
	{"duration not the contract default", "compose.yaml", "${RECOVERY_INTERVAL:-1s}", "${RECOVERY_INTERVAL:-5s}", "environment"},
	{"KAFKA_BROKERS wrong port", "compose.yaml",
		"      KAFKA_BROKERS: kafka:9092\n      SERVICE_TOKEN", "      KAFKA_BROKERS: kafka:29092\n      SERVICE_TOKEN", "environment"},
	{"max conns not a number", "compose.yaml", "${ORDER_MYSQL_MAX_CONNS:-32}", "${ORDER_MYSQL_MAX_CONNS:-lots}", "environment"},

	// compose.yaml: secrets
	{"secret with a default", "compose.yaml",
		"${ADMIN_TOKEN:?set ADMIN_TOKEN in compose/.env (see compose/.env.example)}", "${ADMIN_TOKEN:-changeme}", "secrets"},
	{"secret as a literal", "compose.yaml",
		"${CUSTOMER_JWT_SECRET:?set CUSTOMER_JWT_SECRET in compose/.env (see compose/.env.example)}", "devsecret", "secrets"},
	{"secret allowed empty", "compose.yaml",
		"${SERVICE_TOKEN:?set SERVICE_TOKEN in compose/.env (see compose/.env.example)}", "${SERVICE_TOKEN?unset}", "secrets"},

	// .env.example
	{"example ships a secret", ".env.example", "\nSERVICE_TOKEN=\n", "\nSERVICE_TOKEN=changeme\n", "env-example"},
	{"example lacks a secret", ".env.example", "\nCUSTOMER_JWT_SECRET=\n", "\n", "env-example"},
	{"undocumented variable", ".env.example", "#STUCK_AFTER=30s\n", "", "env-example"},

	// compose.yaml: health checks
	{"service checks /healthz", "compose.yaml",
		"http://127.0.0.1:8080/readyz", "http://127.0.0.1:8080/healthz", "healthchecks"},
	{"service checks another port", "compose.yaml",
		"http://127.0.0.1:8081/readyz", "http://127.0.0.1:9999/readyz", "healthchecks"},
	{"mysql health check off", "compose.yaml",
		`test: ["CMD-SHELL", "mysqladmin ping`, `test: ["NONE", "mysqladmin ping`, "healthchecks"},
	{"kafka health check not asking the broker", "compose.yaml",
		"kafka-topics.sh --bootstrap-server localhost:9092 --list", "kafka-storage.sh info", "healthchecks"},

	// compose.yaml: start order
	{"order waits for product only to start", "compose.yaml",
		"      productservice:\n        condition: service_healthy", "      productservice:\n        condition: service_started", "depends-on"},
	{"product does not wait for the topics", "compose.yaml",
		"condition: service_completed_successfully", "condition: service_started", "depends-on"},
	{"kafka-init does not wait for kafka", "compose.yaml",
		"    depends_on:\n      kafka:\n        condition: service_healthy\n", "", "depends-on"},
	{"optional dependency", "compose.yaml",
		"      mysql:\n        condition: service_healthy\n", "      mysql:\n        condition: service_healthy\n        required: false\n", "depends-on"},

	// compose.yaml: mysql and kafka
	{"mysql 8.0", "compose.yaml", "image: mysql:8.4", "image: mysql:8.0", "mysql"},
	{"mysql data not on a volume", "compose.yaml", "- mysql-data:/var/lib/mysql", "- ./mysql:/var/lib/mysql", "mysql"},
	{"mysql password fixed", "compose.yaml",
		"MYSQL_ROOT_PASSWORD: ${MYSQL_ROOT_PASSWORD:-stockfence}", "MYSQL_ROOT_PASSWORD: stockfence", "mysql"},
	{"kafka advertises localhost", "compose.yaml",
		"KAFKA_ADVERTISED_LISTENERS: PLAINTEXT://kafka:9092", "KAFKA_ADVERTISED_LISTENERS: PLAINTEXT://localhost:9092", "kafka"},
	{"kafka log in /tmp", "compose.yaml",
		"KAFKA_LOG_DIRS: /var/lib/kafka/data", "KAFKA_LOG_DIRS: /tmp/kraft-combined-logs", "kafka"},
	{"kafka offsets replicated 3 times", "compose.yaml",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 1", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 3", "kafka"},
	{"kafka broker only", "compose.yaml",
		"KAFKA_PROCESS_ROLES: broker,controller", "KAFKA_PROCESS_ROLES: broker", "kafka"},
	{"kafka voters elsewhere", "compose.yaml",
		"KAFKA_CONTROLLER_QUORUM_VOTERS: 1@kafka:9093", "KAFKA_CONTROLLER_QUORUM_VOTERS: 1@localhost:9093", "kafka"},

	// compose.yaml: kafka-init
	{"topic not created", "compose.yaml",
		"--create --if-not-exists --topic stock-compensations-dlq", "--list --topic stock-compensations-dlq", "kafka-init"},
	{"topic misspelt", "compose.yaml",
		"--topic stock-compensation-results ", "--topic stock-compensations-results ", "kafka-init"},
	{"topic with 1 partition", "compose.yaml",
		"--topic stock-compensations --partitions 3", "--topic stock-compensations --partitions 1", "kafka-init"},
	{"topic created only once", "compose.yaml",
		"--create --if-not-exists --topic stock-compensations ", "--create --topic stock-compensations ", "kafka-init"},
	{"topics script goes on after a failure", "compose.yaml", `["/bin/bash", "-euc"]`, `["/bin/bash", "-uc"]`, "kafka-init"},
	{"kafka-init restarts", "compose.yaml", `restart: "no"`, `restart: unless-stopped`, "kafka-init"},
	{"kafka-init another image", "compose.yaml",
		"  kafka-init:\n    image: apache/kafka:3.9.1", "  kafka-init:\n    image: apache/kafka:3.8.0", "kafka-init"},

	// compose.yaml: ports and scaling
	{"wrong container port", "compose.yaml", `"${ORDER_PORT:-8080}:8080"`, `"${ORDER_PORT:-8080}:9090"`, "ports"},
	{"fixed host port", "compose.yaml", `"${PRODUCT_PORT:-8081}:8081"`, `"8081:8081"`, "ports"},
	{"container name", "compose.yaml",
		"      dockerfile: compose/Dockerfile.orderservice\n",
		"      dockerfile: compose/Dockerfile.orderservice\n    container_name: orderservice\n", "ports"},

	// Dockerfiles
	{"Dockerfile missing", "compose.yaml",
		"dockerfile: compose/Dockerfile.productservice", "dockerfile: compose/Dockerfile.missing", "dockerfiles"},
	{"context not the root", "compose.yaml",
		"      context: ..\n      dockerfile: compose/Dockerfile.orderservice",
		"      context: .\n      dockerfile: Dockerfile.orderservice", "dockerfiles"},
	{"cgo off", "Dockerfile.productservice", "ENV CGO_ENABLED=1 ", "ENV CGO_ENABLED=0 ", "dockerfiles"},
	{"cgo off for the build", "Dockerfile.orderservice",
		"    go build -trimpath", "    CGO_ENABLED=0 go build -trimpath", "dockerfiles"},
	{"builds the other service", "Dockerfile.productservice",
		"./productservice/cmd/productservice", "./orderservice/cmd/orderservice", "dockerfiles"},
	{"builder on alpine", "Dockerfile.orderservice",
		"FROM golang:${GO_VERSION}-bookworm AS build", "FROM golang:${GO_VERSION}-alpine AS build", "dockerfiles"},
	{"builder Go version", "Dockerfile.orderservice", "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.24", "dockerfiles"},
	{"runtime on alpine", "Dockerfile.productservice",
		"FROM gcr.io/distroless/base-debian12:nonroot", "FROM alpine:3.20", "dockerfiles"},
	{"runtime of another Debian", "Dockerfile.productservice",
		"FROM gcr.io/distroless/base-debian12:nonroot", "FROM debian:trixie-slim", "dockerfiles"},
	{"runs as root", "Dockerfile.orderservice", "USER nonroot:nonroot", "USER root", "dockerfiles"},
	{"wrong port exposed", "Dockerfile.productservice", "EXPOSE 8081", "EXPOSE 8082", "dockerfiles"},
	{"no -trimpath", "Dockerfile.orderservice", "go build -trimpath ", "go build ", "dockerfiles"},
	{"symbols kept", "Dockerfile.orderservice", `-ldflags="-s -w"`, `-ldflags="-s"`, "dockerfiles"},
	{"workspace module go.mod missing", "Dockerfile.productservice", "COPY e2e/go.mod e2e/go.sum e2e/\n", "", "dockerfiles"},
	{"no dependency layer", "Dockerfile.orderservice", "go mod download $mods", "true", "dockerfiles"},
	{"sources before the dependency layer", "Dockerfile.orderservice",
		"COPY go.work go.work.sum ./\n", "COPY go.work go.work.sum ./\nCOPY shared/ shared/\n", "dockerfiles"},
	{"replaced module sources missing", "Dockerfile.orderservice", "COPY sql/ sql/\n", "", "dockerfiles"},
	{"copies a missing file", "Dockerfile.orderservice", "COPY go.work go.work.sum ./", "COPY go.work go.work.sum go.mod ./", "dockerfiles"},
	{"health probe not in the image", "Dockerfile.productservice",
		"/out/healthcheck /usr/local/bin/healthcheck", "/out/healthcheck /usr/bin/healthcheck", "dockerfiles"},
	{"entrypoint not the build output", "Dockerfile.orderservice",
		`ENTRYPOINT ["/usr/local/bin/orderservice"]`, `ENTRYPOINT ["/usr/local/bin/healthcheck"]`, "dockerfiles"},

	// Ignore files
	{"ignore file missing", "Dockerfile.orderservice.dockerignore", "", "", "dockerignore"},
	{"module sources ignored", "Dockerfile.productservice.dockerignore", "!sql\n", "", "dockerignore"},
	{"probe sources ignored", "Dockerfile.orderservice.dockerignore", "!compose/healthcheck\n", "", "dockerignore"},
	{"everything let in", "Dockerfile.productservice.dockerignore", "\n*\n", "\n", "dockerignore"},
	{"local secrets let in", "Dockerfile.orderservice.dockerignore", "\n*\n", "\n*\n!.run\n", "dockerignore"},
}

func TestChecksCatchDefects(t *testing.T) {
	root := repoRoot(t)
	work, err := readGoWork(root)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]check{}
	for _, c := range checks {
		byName[c.name] = c
	}
	for _, def := range defects {
		t.Run(def.name, func(t *testing.T) {
			t.Parallel()
			c, ok := byName[def.check]
			if !ok {
				t.Fatalf("no check %q", def.check)
			}
			dir := t.TempDir()
			fixture(t, root, dir, work.Use)
			file := filepath.Join(dir, "compose", def.file)
			if def.old == "" && def.new == "" {
				if err := os.Remove(file); err != nil {
					t.Fatal(err)
				}
			} else {
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(data), def.old) {
					t.Fatalf("stale defect: %s no longer contains %q", def.file, def.old)
				}
				broken := strings.Replace(string(data), def.old, def.new, 1)
				if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var r report
			c.run(&r, newDeployment(dir, filepath.Join(dir, "compose")))
			if len(r.problems) == 0 {
				t.Errorf("check %q passes with this defect", def.check)
			}
			for _, p := range r.problems {
				t.Logf("%s: %s", def.check, p)
			}
		})
	}
}

// fixture makes dir a stand-in for the repository root: a copy of compose/
// (without a developer's .env) and links to go.work and the modules.
func fixture(t *testing.T, root, dir string, use []*modfile.Use) {
	t.Helper()
	src := filepath.Join(root, "compose")
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dir, "compose", rel)
		if e.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if rel == ".env" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	links := []string{"go.work", "go.work.sum"}
	for _, u := range use {
		links = append(links, filepath.Clean(u.Path))
	}
	for _, name := range links {
		if err := os.Symlink(filepath.Join(root, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
