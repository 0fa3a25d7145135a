package composecheck_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-sql-driver/mysql"
	"github.com/mattn/go-shellwords"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"go.yaml.in/yaml/v4"
	"golang.org/x/mod/modfile"

	"github.com/stockfence/stockfence/shared/contract"
)

// The contract (docs: design.md, "Processes and configuration").

// app is one of the two services and the names it is configured by.
type app struct {
	name     string // compose service, binary, module folder and Dockerfile suffix
	addrVar  string // listen address variable
	dsnVar   string // go-sql-driver DSN variable
	database string // the database the DSN must name
}

var apps = []app{
	{name: "productservice", addrVar: "PRODUCT_HTTP_ADDR", dsnVar: "PRODUCT_MYSQL_DSN", database: "products"},
	{name: "orderservice", addrVar: "ORDER_HTTP_ADDR", dsnVar: "ORDER_MYSQL_DSN", database: "orders"},
}

// contractEnv lists every variable the contract says each service reads.
var contractEnv = map[string][]string{
	"productservice": {"PRODUCT_HTTP_ADDR", "PRODUCT_MYSQL_DSN", "KAFKA_BROKERS", "SERVICE_TOKEN", "ADMIN_TOKEN"},
	"orderservice": {
		"ORDER_HTTP_ADDR", "ORDER_MYSQL_DSN", "PRODUCT_URL", "KAFKA_BROKERS", "SERVICE_TOKEN", "ADMIN_TOKEN",
		"CUSTOMER_JWT_SECRET", "PRODUCT_TIMEOUT", "ORDER_SYNC_BUDGET", "RECOVERY_INTERVAL", "STUCK_AFTER",
	},
}

// additionalEnv lists the variables beyond the contract that the services
// also read (README, "Configuration"). Anything else set on a service is a
// misspelling or a leftover.
var additionalEnv = map[string][]string{
	"productservice": {"PRODUCT_MYSQL_MAX_CONNS"},
	"orderservice":   {"ORDER_MYSQL_MAX_CONNS"},
}

// contractDurations are the order service's durations and their contract
// defaults, which compose.yaml uses unless compose/.env overrides them.
var contractDurations = map[string]time.Duration{
	"PRODUCT_TIMEOUT":   time.Second,
	"ORDER_SYNC_BUDGET": 3 * time.Second,
	"RECOVERY_INTERVAL": time.Second,
	"STUCK_AFTER":       30 * time.Second,
}

// secrets are required by the contract; compose.yaml must interpolate them
// with ${VAR:?...} so that nothing runs with a default secret.
var secrets = []string{"SERVICE_TOKEN", "ADMIN_TOKEN", "CUSTOMER_JWT_SECRET"}

// testEnv is the interpolation environment of the checks: the three secrets,
// with values no default could have.
func testEnv() map[string]string {
	return map[string]string{
		"SERVICE_TOKEN":       "test-service-token-7f3a",
		"ADMIN_TOKEN":         "test-admin-token-c41e",
		"CUSTOMER_JWT_SECRET": "test-customer-jwt-secret-92bd",
	}
}

const (
	healthy   = types.ServiceConditionHealthy
	completed = types.ServiceConditionCompletedSuccessfully
)

// wantDependsOn is the start order: each service and the condition it waits
// for on each of its dependencies.
var wantDependsOn = map[string]map[string]string{
	"mysql":          {},
	"kafka":          {},
	"kafka-init":     {"kafka": healthy},
	"productservice": {"mysql": healthy, "kafka-init": completed},
	"orderservice":   {"mysql": healthy, "kafka-init": completed, "productservice": healthy},
}

// sensitivePaths must never reach a build context (the repository root).
var sensitivePaths = []string{".git/config", ".run/secrets.json", "bin/orderservice", "compose/.env"}

// deployment is what the checks look at: compose/ loaded the way docker
// compose loads it, with env as the interpolation environment (no OS
// environment, no compose/.env).
type deployment struct {
	root       string // repository root: go.work and the module folders
	composeDir string // compose.yaml, .env.example, the Dockerfiles and their ignore files
	env        map[string]string
	project    *types.Project
	loadErr    error
}

func newDeployment(root, composeDir string) *deployment {
	d := &deployment{root: root, composeDir: composeDir, env: testEnv()}
	d.project, d.loadErr = loadProject(d.composeFile(), d.env)
	return d
}

func (d *deployment) composeFile() string { return filepath.Join(d.composeDir, "compose.yaml") }

func loadProject(file string, env map[string]string) (*types.Project, error) {
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithEnv(kv), cli.WithResolvedPaths(true))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

// report collects the problems one check finds.
type report struct{ problems []string }

func (r *report) errorf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// service returns a service of the loaded project, reporting why not.
func (d *deployment) service(r *report, name string) (types.ServiceConfig, bool) {
	if d.project == nil {
		r.errorf("compose.yaml did not load: %v", d.loadErr)
		return types.ServiceConfig{}, false
	}
	s, ok := d.project.Services[name]
	if !ok {
		r.errorf("no service %q", name)
	}
	return s, ok
}

// getenv is a service's variable, "" when unset.
func getenv(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

// check is one named group of assertions; TestCompose runs each on the real
// files and TestChecksCatchDefects proves each fails on a broken copy.
type check struct {
	name string
	run  func(*report, *deployment)
}

var checks = []check{
	{"load", checkLoad},
	{"environment", checkEnvironment},
	{"secrets", checkSecrets},
	{"env-example", checkEnvExample},
	{"healthchecks", checkHealthchecks},
	{"depends-on", checkDependsOn},
	{"mysql", checkMySQL},
	{"kafka", checkKafka},
	{"kafka-init", checkKafkaInit},
	{"ports", checkPorts},
	{"dockerfiles", checkDockerfiles},
	{"dockerignore", checkDockerignore},
}

func TestCompose(t *testing.T) {
	root := repoRoot(t)
	d := newDeployment(root, filepath.Join(root, "compose"))
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			var r report
			c.run(&r, d)
			for _, p := range r.problems {
				t.Error(p)
			}
		})
	}
}

// checkLoad: compose.yaml parses and validates (schema and consistency, as
// docker compose does) and has the five services.
func checkLoad(r *report, d *deployment) {
	if d.loadErr != nil {
		r.errorf("compose.yaml does not load: %v", d.loadErr)
		return
	}
	for name := range wantDependsOn {
		d.service(r, name)
	}
}

// checkEnvironment: every variable the contract says a service reads is set,
// nothing it does not read is, and each value is usable in the container.
func checkEnvironment(r *report, d *deployment) {
	for _, a := range apps {
		s, ok := d.service(r, a.name)
		if !ok {
			continue
		}
		for _, name := range contractEnv[a.name] {
			if getenv(s, name) == "" {
				r.errorf("%s: contract variable %s is not set", a.name, name)
			}
		}
		known := append(slices.Clone(contractEnv[a.name]), additionalEnv[a.name]...)
		for name := range s.Environment {
			if !slices.Contains(known, name) {
				r.errorf("%s: sets %s, which the service does not read", a.name, name)
			}
		}

		if _, err := listenPort(s, a); err != nil {
			r.errorf("%s: %v", a.name, err)
		}
		checkDSN(r, d, s, a)
		checkBrokers(r, d, s, a.name)
		for _, name := range additionalEnv[a.name] {
			if v := getenv(s, name); v != "" {
				if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
					r.errorf("%s: %s=%q is not a number from 1 to 1000", a.name, name, v)
				}
			}
		}
	}

	order, ok := d.service(r, "orderservice")
	if !ok {
		return
	}
	got := map[string]time.Duration{}
	for name, def := range contractDurations {
		v := getenv(order, name)
		dur, err := time.ParseDuration(v)
		switch {
		case err != nil:
			r.errorf("orderservice: %s=%q is not a Go duration: %v", name, v, err)
		case dur <= 0:
			r.errorf("orderservice: %s=%q is not positive", name, v)
		case dur != def:
			r.errorf("orderservice: %s=%s, want the contract default %s", name, dur, def)
		}
		got[name] = dur
	}
	if got["ORDER_SYNC_BUDGET"] <= got["PRODUCT_TIMEOUT"] {
		r.errorf("orderservice: ORDER_SYNC_BUDGET (%s) leaves no room for one PRODUCT_TIMEOUT (%s)",
			got["ORDER_SYNC_BUDGET"], got["PRODUCT_TIMEOUT"])
	}

	raw := getenv(order, "PRODUCT_URL")
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || (u.Path != "" && u.Path != "/") {
		r.errorf("orderservice: PRODUCT_URL=%q is not http://<host>:<port>", raw)
		return
	}
	if u.Hostname() != "productservice" {
		r.errorf("orderservice: PRODUCT_URL=%q does not name the productservice service", raw)
	}
	if product, ok := d.service(r, "productservice"); ok {
		if port, err := listenPort(product, apps[0]); err == nil && u.Port() != port {
			r.errorf("orderservice: PRODUCT_URL=%q, but productservice listens on port %s", raw, port)
		}
	}
}

// listenPort is the port of a service's listen address, which must be on
// every interface: the contract default 127.0.0.1 is unreachable from other
// containers.
func listenPort(s types.ServiceConfig, a app) (string, error) {
	v := getenv(s, a.addrVar)
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%s=%q is not host:port", a.addrVar, v)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%s=%q has no numeric port", a.addrVar, v)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		return "", fmt.Errorf("%s=%q listens on %s only; other containers cannot reach it", a.addrVar, v, host)
	}
	return port, nil
}

// checkDSN: the DSN parses, reaches the mysql service as root with its root
// password, names the service's database and parses times.
func checkDSN(r *report, d *deployment, s types.ServiceConfig, a app) {
	raw := getenv(s, a.dsnVar)
	cfg, err := mysql.ParseDSN(raw)
	if err != nil {
		r.errorf("%s: %s does not parse: %v", a.name, a.dsnVar, err)
		return
	}
	if cfg.DBName != a.database {
		r.errorf("%s: %s names database %q, want %q", a.name, a.dsnVar, cfg.DBName, a.database)
	}
	if !cfg.ParseTime {
		r.errorf("%s: %s lacks parseTime=true", a.name, a.dsnVar)
	}
	if cfg.Net != "tcp" || cfg.Addr != "mysql:3306" {
		r.errorf("%s: %s connects to %s(%s), want tcp(mysql:3306)", a.name, a.dsnVar, cfg.Net, cfg.Addr)
	}
	if cfg.User != "root" {
		r.errorf("%s: %s user is %q, want root (the service creates its database)", a.name, a.dsnVar, cfg.User)
	}
	if db, ok := d.service(r, "mysql"); ok && cfg.Passwd != getenv(db, "MYSQL_ROOT_PASSWORD") {
		r.errorf("%s: %s password is not mysql's MYSQL_ROOT_PASSWORD", a.name, a.dsnVar)
	}
}

// checkBrokers: KAFKA_BROKERS is exactly what the broker advertises.
func checkBrokers(r *report, d *deployment, s types.ServiceConfig, name string) {
	kafka, ok := d.service(r, "kafka")
	if !ok {
		return
	}
	advertised := listenerAddr(getenv(kafka, "KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT")
	raw := getenv(s, "KAFKA_BROKERS")
	for _, b := range strings.Split(raw, ",") {
		if strings.TrimSpace(b) != advertised {
			r.errorf("%s: KAFKA_BROKERS=%q, but kafka advertises %q", name, raw, advertised)
		}
	}
}

// listenerAddr is the host:port of the named listener in a Kafka listener
// list ("PLAINTEXT://kafka:9092,..."), "" when absent.
func listenerAddr(list, name string) string {
	for _, l := range strings.Split(list, ",") {
		if n, addr, ok := strings.Cut(strings.TrimSpace(l), "://"); ok && n == name {
			return addr
		}
	}
	return ""
}

// checkSecrets: the secrets come from the environment, unchanged and the
// same in both services, and the load fails while one is missing or empty.
func checkSecrets(r *report, d *deployment) {
	for _, a := range apps {
		s, ok := d.service(r, a.name)
		if !ok {
			continue
		}
		for _, name := range secrets {
			if !slices.Contains(contractEnv[a.name], name) {
				continue
			}
			if got := getenv(s, name); got != d.env[name] {
				r.errorf("%s: %s is %q, not the value from the environment (a default or a literal)", a.name, name, got)
			}
		}
	}
	// Each service on its own: the load below fails as soon as one service
	// requires the secret, which would hide another that has a default.
	raw, err := rawEnvironment(d.composeFile())
	if err != nil {
		r.errorf("%v", err)
	}
	for _, a := range apps {
		for _, name := range secrets {
			if !slices.Contains(contractEnv[a.name], name) {
				continue
			}
			v := raw[a.name][name]
			if !regexp.MustCompile(`^\$\{` + name + `:\?[^}]*\}$`).MatchString(v) {
				r.errorf("%s: %s is %q in compose.yaml; want ${%s:?message}: required, not empty, no default", a.name, name, v, name)
			}
		}
	}
	for _, name := range secrets {
		for _, v := range []*string{nil, new(string)} {
			env := testEnv()
			what := "unset"
			if v == nil {
				delete(env, name)
			} else {
				env[name] = *v
				what = "empty"
			}
			_, err := loadProject(d.composeFile(), env)
			if err == nil {
				r.errorf("compose.yaml loads with %s %s; it must require it with ${%s:?...}", name, what, name)
			} else if !strings.Contains(err.Error(), name) {
				r.errorf("with %s %s the load fails without naming it: %v", name, what, err)
			}
		}
	}
	if _, err := loadProject(d.composeFile(), map[string]string{}); err == nil {
		r.errorf("compose.yaml loads without any secret")
	}
}

// rawEnvironment is each service's environment as compose.yaml writes it,
// before interpolation.
func rawEnvironment(file string) (map[string]map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Services map[string]struct {
			Environment any `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("compose.yaml: %w", err)
	}
	out := map[string]map[string]string{}
	for name, s := range doc.Services {
		env := map[string]string{}
		switch e := s.Environment.(type) {
		case map[string]any:
			for k, v := range e {
				if v != nil {
					env[k] = fmt.Sprint(v)
				}
			}
		case []any:
			for _, kv := range e {
				k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
				env[k] = v
			}
		}
		out[name] = env
	}
	return out, nil
}

// checkEnvExample: .env.example leaves every secret empty (so a copy that
// was not edited is refused) and documents every variable compose.yaml
// interpolates.
func checkEnvExample(r *report, d *deployment) {
	file := filepath.Join(d.composeDir, ".env.example")
	text, err := os.ReadFile(file)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	vars, err := dotenv.Read(file)
	if err != nil {
		r.errorf(".env.example does not parse: %v", err)
		return
	}
	for _, name := range secrets {
		v, ok := vars[name]
		switch {
		case !ok:
			r.errorf(".env.example does not list %s", name)
		case v != "":
			r.errorf(".env.example gives %s a value; leave it empty so that an unedited copy is refused", name)
		}
	}
	env := map[string]string{}
	for k, v := range vars {
		env[k] = v
	}
	if _, err := loadProject(d.composeFile(), env); err == nil {
		r.errorf("compose.yaml loads with an unedited copy of .env.example")
	}

	composeText, err := os.ReadFile(d.composeFile())
	if err != nil {
		r.errorf("%v", err)
		return
	}
	// Interpolations outside comments.
	var yamlLines []string
	for _, line := range strings.Split(string(composeText), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			yamlLines = append(yamlLines, line)
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(strings.Join(yamlLines, "\n"), -1) {
		name := m[1]
		if !regexp.MustCompile(`(?m)^#?` + name + `=`).Match(text) {
			r.errorf("compose.yaml interpolates %s, which .env.example does not document", name)
		}
	}
}

// checkHealthchecks: every long-running service has a health check (the
// start order depends on them); the services' check their /readyz.
func checkHealthchecks(r *report, d *deployment) {
	for _, name := range []string{"mysql", "kafka", "productservice", "orderservice"} {
		s, ok := d.service(r, name)
		if !ok {
			continue
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			r.errorf("%s: no health check", name)
			continue
		}
		cmd := strings.Join(hc.Test[1:], " ")
		switch name {
		case "mysql":
			if !strings.Contains(cmd, "mysqladmin") || !strings.Contains(cmd, "ping") {
				r.errorf("mysql: health check %q is not mysqladmin ping", cmd)
			}
		case "kafka":
			if !strings.Contains(cmd, "kafka-topics.sh") || !strings.Contains(cmd, "--bootstrap-server") {
				r.errorf("kafka: health check %q does not ask the broker (kafka-topics.sh --bootstrap-server)", cmd)
			}
		}
	}
	for _, a := range apps {
		s, ok := d.service(r, a.name)
		if !ok || s.HealthCheck == nil {
			continue
		}
		u, err := healthcheckURL(s.HealthCheck.Test)
		if err != nil {
			r.errorf("%s: %v", a.name, err)
			continue
		}
		if u.Path != "/readyz" {
			r.errorf("%s: health check GETs %s, want /readyz", a.name, u.Path)
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			r.errorf("%s: health check goes to %s, not to the container itself", a.name, h)
		}
		if port, err := listenPort(s, a); err == nil && u.Port() != port {
			r.errorf("%s: health check goes to port %s, but the service listens on %s", a.name, u.Port(), port)
		}
	}
}

// healthcheckURL is the http URL a health check test requests.
func healthcheckURL(test types.HealthCheckTest) (*url.URL, error) {
	if len(test) < 2 || (test[0] != "CMD" && test[0] != "CMD-SHELL") {
		return nil, fmt.Errorf("health check %q is neither CMD nor CMD-SHELL", test)
	}
	for _, arg := range strings.Fields(strings.Join(test[1:], " ")) {
		if strings.HasPrefix(arg, "http://") {
			return url.Parse(arg)
		}
	}
	return nil, fmt.Errorf("health check %q requests no http:// URL", test)
}

// checkDependsOn: the start order, exactly.
func checkDependsOn(r *report, d *deployment) {
	for name, want := range wantDependsOn {
		s, ok := d.service(r, name)
		if !ok {
			continue
		}
		for dep, cond := range want {
			got, ok := s.DependsOn[dep]
			switch {
			case !ok:
				r.errorf("%s: does not depend on %s (want %s)", name, dep, cond)
			case got.Condition != cond:
				r.errorf("%s: depends on %s with condition %s, want %s", name, dep, got.Condition, cond)
			case !got.Required:
				r.errorf("%s: its dependency on %s is not required", name, dep)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := want[dep]; !ok {
				r.errorf("%s: unexpected dependency on %s", name, dep)
			}
		}
	}
}

// checkMySQL: MySQL 8.4 with its root password set and its data on a named
// volume.
func checkMySQL(r *report, d *deployment) {
	s, ok := d.service(r, "mysql")
	if !ok {
		return
	}
	if !strings.HasPrefix(s.Image, "mysql:8.4") {
		r.errorf("mysql: image %q, want mysql:8.4", s.Image)
	}
	if getenv(s, "MYSQL_ROOT_PASSWORD") == "" {
		r.errorf("mysql: MYSQL_ROOT_PASSWORD is not set")
	}
	if !onNamedVolume(d.project, s, "/var/lib/mysql") {
		r.errorf("mysql: /var/lib/mysql is not on a named volume")
	}
	// The DSNs follow the password.
	env := testEnv()
	env["MYSQL_ROOT_PASSWORD"] = "Other-Pass_1"
	p, err := loadProject(d.composeFile(), env)
	if err != nil {
		r.errorf("loading with MYSQL_ROOT_PASSWORD set: %v", err)
		return
	}
	if got := getenv(p.Services["mysql"], "MYSQL_ROOT_PASSWORD"); got != "Other-Pass_1" {
		r.errorf("mysql: MYSQL_ROOT_PASSWORD does not come from the environment (got %q)", got)
	}
	for _, a := range apps {
		if cfg, err := mysql.ParseDSN(getenv(p.Services[a.name], a.dsnVar)); err != nil || cfg.Passwd != "Other-Pass_1" {
			r.errorf("%s: %s does not follow MYSQL_ROOT_PASSWORD", a.name, a.dsnVar)
		}
	}
}

// onNamedVolume reports whether dir is mounted from a volume of the project.
func onNamedVolume(p *types.Project, s types.ServiceConfig, dir string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == dir {
			_, ok := p.Volumes[v.Source]
			return ok
		}
	}
	return false
}

// checkKafka: a single-node KRaft broker and controller, replication factor
// 1 everywhere, its log on a named volume.
func checkKafka(r *report, d *deployment) {
	s, ok := d.service(r, "kafka")
	if !ok {
		return
	}
	if !strings.HasPrefix(s.Image, "apache/kafka:") {
		r.errorf("kafka: image %q, want apache/kafka", s.Image)
	}
	want := map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
	}
	for name, v := range want {
		if got := getenv(s, name); got != v {
			r.errorf("kafka: %s=%q, want %q", name, got, v)
		}
	}
	for _, name := range []string{"CLUSTER_ID", "KAFKA_NODE_ID", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"} {
		if getenv(s, name) == "" {
			r.errorf("kafka: %s is not set (the image would use its own default)", name)
		}
	}
	if got := listenerAddr(getenv(s, "KAFKA_LISTENERS"), "PLAINTEXT"); got != ":9092" {
		r.errorf("kafka: PLAINTEXT listener %q, want :9092 (every interface)", got)
	}
	controller := listenerAddr(getenv(s, "KAFKA_LISTENERS"), "CONTROLLER")
	if controller != ":9093" {
		r.errorf("kafka: CONTROLLER listener %q, want :9093", controller)
	}
	if got := listenerAddr(getenv(s, "KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT"); got != "kafka:9092" {
		r.errorf("kafka: advertises PLAINTEXT %q, want kafka:9092 (the service name)", got)
	}
	if got, want := getenv(s, "KAFKA_CONTROLLER_QUORUM_VOTERS"), getenv(s, "KAFKA_NODE_ID")+"@kafka"+controller; got != want {
		r.errorf("kafka: KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want %q", got, want)
	}
	logDirs := getenv(s, "KAFKA_LOG_DIRS")
	if logDirs == "" || !onNamedVolume(d.project, s, logDirs) {
		r.errorf("kafka: KAFKA_LOG_DIRS=%q is not on a named volume", logDirs)
	}
}

// checkKafkaInit: a one-shot of the broker's image that creates every
// contract topic (3 partitions, if not there yet) and fails if one fails.
func checkKafkaInit(r *report, d *deployment) {
	s, ok := d.service(r, "kafka-init")
	if !ok {
		return
	}
	if kafka, ok := d.service(r, "kafka"); ok && s.Image != kafka.Image {
		r.errorf("kafka-init: image %q differs from kafka's %q", s.Image, kafka.Image)
	}
	if s.Restart != "" && s.Restart != types.RestartPolicyNo && s.Restart != types.RestartPolicyOnFailure {
		r.errorf("kafka-init: restart %q would rerun a one-shot that succeeded", s.Restart)
	}
	argv := append(slices.Clone([]string(s.Entrypoint)), s.Command...)
	if len(argv) < 3 || !strings.HasSuffix(argv[0], "sh") || !strings.HasPrefix(argv[1], "-") ||
		!strings.Contains(argv[1], "c") {
		r.errorf("kafka-init: %q is not <shell> -c <script>", argv)
		return
	}
	script := argv[len(argv)-1]
	if !strings.Contains(argv[1], "e") && !strings.HasPrefix(strings.TrimSpace(script), "set -e") {
		r.errorf("kafka-init: the script does not stop at the first failure (sh -e or set -e)")
	}
	var creates [][]string
	for _, line := range splitCommands(script) {
		args, err := shellwords.Parse(line)
		if err != nil {
			r.errorf("kafka-init: %q: %v", line, err)
			continue
		}
		if len(args) > 0 && path.Base(args[0]) == "kafka-topics.sh" && slices.Contains(args, "--create") {
			creates = append(creates, args)
		}
	}
	for _, topic := range contract.Topics {
		var found []string
		for _, args := range creates {
			if flagValue(args, "--topic") == topic {
				found = args
			}
		}
		if found == nil {
			r.errorf("kafka-init: does not create topic %s", topic)
			continue
		}
		if v := flagValue(found, "--partitions"); v != "3" {
			r.errorf("kafka-init: creates %s with --partitions %q, want 3", topic, v)
		}
		if !slices.Contains(found, "--if-not-exists") {
			r.errorf("kafka-init: creates %s without --if-not-exists (a restart would fail)", topic)
		}
		if v := flagValue(found, "--bootstrap-server"); v != "kafka:9092" {
			r.errorf("kafka-init: creates %s through %q, want kafka:9092", topic, v)
		}
	}
}

// splitCommands splits a shell script into simple commands (no quoting
// awareness beyond what the scripts here need).
func splitCommands(script string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		for _, part := range regexp.MustCompile(`&&|\|\||;`).Split(line, -1) {
			if part = strings.TrimSpace(part); part != "" && !strings.HasPrefix(part, "#") {
				out = append(out, part)
			}
		}
	}
	return out
}

// flagValue is the value of --name v or --name=v in args, "" if absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// checkPorts: each service's listen port is published, from a host port
// that can be a range, and nothing pins a container name, so that
// --scale works.
func checkPorts(r *report, d *deployment) {
	for _, a := range apps {
		s, ok := d.service(r, a.name)
		if !ok {
			continue
		}
		if s.ContainerName != "" {
			r.errorf("%s: container_name %q prevents --scale", a.name, s.ContainerName)
		}
		port, err := listenPort(s, a)
		if err != nil {
			continue // reported by the environment check
		}
		published := false
		for _, p := range s.Ports {
			if strconv.FormatUint(uint64(p.Target), 10) == port && p.Published != "" {
				published = true
			}
		}
		if !published {
			r.errorf("%s: port %s is not published", a.name, port)
		}
	}
	env := testEnv()
	env["ORDER_PORT"], env["PRODUCT_PORT"] = "8080-8089", "18081-18089"
	p, err := loadProject(d.composeFile(), env)
	if err != nil {
		r.errorf("loading with port ranges: %v", err)
		return
	}
	for name, want := range map[string]string{"orderservice": "8080-8089", "productservice": "18081-18089"} {
		if s, ok := p.Services[name]; !ok || len(s.Ports) == 0 || s.Ports[0].Published != want {
			r.errorf("%s: the published port does not follow its variable (want %s)", name, want)
		}
	}
}

// The Dockerfiles.

type instruction struct {
	cmd   string            // upper case
	flags map[string]string // leading --name=value flags
	args  string            // the rest, continuation lines joined
	line  int
}

type stage struct {
	base, name string
	body       []instruction
}

// parseDockerfile splits a Dockerfile into stages of instructions: comments
// and parser directives dropped, continuation lines joined, ARGs before the
// first FROM expanded in FROM. Enough for the Dockerfiles here, not a full
// parser (no heredocs, no escape directive).
func parseDockerfile(text string) ([]stage, error) {
	var instrs []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() > 0) {
			continue
		}
		if trimmed == "" {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		in := instruction{cmd: strings.ToUpper(cmd), flags: map[string]string{}, line: start}
		rest = strings.TrimSpace(rest)
		for strings.HasPrefix(rest, "--") {
			flag, after, _ := strings.Cut(rest, " ")
			k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
			in.flags[k] = v
			rest = strings.TrimSpace(after)
		}
		in.args = rest
		instrs = append(instrs, in)
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, errors.New("the last instruction ends in a line continuation")
	}
	globals := map[string]string{}
	var stages []stage
	for _, in := range instrs {
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			globals[k] = v
		case in.cmd == "FROM":
			f := strings.Fields(os.Expand(in.args, func(k string) string { return globals[k] }))
			st := stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0:
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	if len(stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return stages, nil
}

// words splits an exec-form (JSON array) or shell-form argument list.
func words(args string) ([]string, error) {
	if strings.HasPrefix(args, "[") {
		var w []string
		err := json.Unmarshal([]byte(args), &w)
		return w, err
	}
	return shellwords.Parse(args)
}

// goBuild is a `go build` found in a RUN instruction.
type goBuild struct {
	stage  int
	index  int // of the RUN in the stage
	env    map[string]string
	args   []string // after "go build"
	output string
	target string
}

// findGoBuilds lists every go build of the Dockerfile, with the environment
// it runs in (the stage's ENVs before it, then any VAR=value prefix).
func findGoBuilds(stages []stage) []goBuild {
	var out []goBuild
	for si, st := range stages {
		env := map[string]string{}
		for ii, in := range st.body {
			switch in.cmd {
			case "ENV":
				w, _ := shellwords.Parse(in.args)
				if len(w) == 2 && !strings.Contains(w[0], "=") {
					env[w[0]] = w[1]
					continue
				}
				for _, kv := range w {
					if k, v, ok := strings.Cut(kv, "="); ok {
						env[k] = v
					}
				}
			case "RUN":
				for _, c := range splitCommands(in.args) {
					w, err := shellwords.Parse(c)
					if err != nil {
						continue
					}
					local := map[string]string{}
					for k, v := range env {
						local[k] = v
					}
					for len(w) > 0 && strings.Contains(w[0], "=") && !strings.HasPrefix(w[0], "-") {
						k, v, _ := strings.Cut(w[0], "=")
						local[k] = v
						w = w[1:]
					}
					if len(w) < 2 || w[0] != "go" || w[1] != "build" {
						continue
					}
					b := goBuild{stage: si, index: ii, env: local, args: w[2:]}
					b.output = flagValue(b.args, "-o")
					if last := w[len(w)-1]; !strings.HasPrefix(last, "-") && last != b.output {
						b.target = last
					}
					out = append(out, b)
				}
			}
		}
	}
	return out
}

// checkDockerfiles: each service's Dockerfile exists where compose.yaml says,
// builds the right package with cgo in a Debian Go image through the
// workspace, and runs it as non-root on a matching glibc base.
func checkDockerfiles(r *report, d *deployment) {
	work, err := readGoWork(d.root)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	for _, a := range apps {
		s, ok := d.service(r, a.name)
		if !ok {
			continue
		}
		if s.Build == nil {
			r.errorf("%s: not built (no build section)", a.name)
			continue
		}
		if filepath.Clean(s.Build.Context) != filepath.Clean(d.root) {
			r.errorf("%s: build context %s is not the repository root %s (go.work must be in it)", a.name, s.Build.Context, d.root)
			continue
		}
		file := filepath.Join(s.Build.Context, s.Build.Dockerfile)
		text, err := os.ReadFile(file)
		if err != nil {
			r.errorf("%s: Dockerfile: %v", a.name, err)
			continue
		}
		stages, err := parseDockerfile(string(text))
		if err != nil {
			r.errorf("%s: %s: %v", a.name, s.Build.Dockerfile, err)
			continue
		}
		checkDockerfile(r, d, s, a, work, s.Build.Dockerfile, stages)
	}
}

func checkDockerfile(r *report, d *deployment, s types.ServiceConfig, a app, work *modfile.WorkFile, name string, stages []stage) {
	errorf := func(format string, args ...any) { r.errorf(name+": "+format, args...) }

	// Every local source must exist in the context.
	for _, st := range stages {
		for _, in := range st.body {
			if (in.cmd == "COPY" || in.cmd == "ADD") && in.flags["from"] == "" {
				w, _ := words(in.args)
				for _, src := range w[:max(len(w)-1, 0)] {
					if _, err := os.Stat(filepath.Join(d.root, filepath.FromSlash(src))); err != nil {
						errorf("line %d copies %s, which is not in the build context", in.line, src)
					}
				}
			}
		}
	}

	target := "./" + a.name + "/cmd/" + a.name
	var build *goBuild
	for _, b := range findGoBuilds(stages) {
		if b.target == target {
			build = &b
		}
		for _, other := range apps {
			if other != a && b.target == "./"+other.name+"/cmd/"+other.name {
				errorf("builds %s; this is the %s image", b.target, a.name)
			}
		}
	}
	if build == nil {
		errorf("no RUN go build ... %s", target)
		return
	}
	bst := stages[build.stage]
	if work.Go == nil {
		errorf("go.work has no go directive")
		return
	}
	goVersion := work.Go.Version
	if major, minor, ok := strings.Cut(goVersion, "."); ok {
		goVersion = major + "." + strings.SplitN(minor, ".", 2)[0]
	}
	if !strings.HasPrefix(bst.base, "golang:"+goVersion) || !strings.HasSuffix(bst.base, "-bookworm") {
		errorf("builds in %s, want golang:%s-bookworm (Debian: gcc and glibc for cgo)", bst.base, goVersion)
	}
	if build.env["CGO_ENABLED"] != "1" {
		errorf("go build runs with CGO_ENABLED=%q, want 1 (confluent-kafka-go needs cgo)", build.env["CGO_ENABLED"])
	}
	if !slices.Contains(build.args, "-trimpath") {
		errorf("go build without -trimpath")
	}
	if ld := strings.Fields(flagValue(build.args, "-ldflags")); !slices.Contains(ld, "-s") || !slices.Contains(ld, "-w") {
		errorf("go build -ldflags %q, want -s -w", ld)
	}
	if build.output == "" {
		errorf("go build without -o")
	}

	// Dependencies are a layer of their own: every module of go.work has its
	// go.mod copied and go mod download runs before any source is copied.
	copied := map[string]int{} // source path -> index of the COPY in the build stage
	download := -1
	for i, in := range bst.body[:build.index] {
		switch {
		case in.cmd == "COPY" && in.flags["from"] == "":
			w, _ := words(in.args)
			for _, src := range w[:max(len(w)-1, 0)] {
				src = strings.TrimSuffix(path.Clean(src), "/")
				if _, ok := copied[src]; !ok {
					copied[src] = i
				}
			}
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download") && download < 0:
			download = i
		}
	}
	for _, f := range []string{"go.work", "go.work.sum"} {
		if _, ok := copied[f]; !ok {
			errorf("does not copy %s before go build", f)
		}
	}
	if download < 0 {
		errorf("no RUN go mod download before go build (the dependency layer)")
	}
	for _, u := range work.Use {
		dir := path.Clean(u.Path)
		i, ok := copied[dir+"/go.mod"]
		if !ok {
			i, ok = copied[dir]
		}
		switch {
		case !ok:
			errorf("does not copy %s/go.mod; the go.work workspace does not load without it", dir)
		case download >= 0 && i > download:
			errorf("copies %s/go.mod after go mod download", dir)
		}
	}
	sources, err := localModules(d.root, a.name)
	if err != nil {
		errorf("%v", err)
	}
	for _, dir := range sources {
		i, ok := copied[dir]
		switch {
		case !ok:
			errorf("does not copy the %s module's sources, which %s builds with", dir, a.name)
		case download >= 0 && i < download:
			errorf("copies %s's sources before go mod download, so every source change downloads again", dir)
		}
	}

	// The runtime: a glibc base of the builder's Debian release, non-root,
	// the binary from the build stage, the listen port exposed.
	rt := stages[len(stages)-1]
	if strings.Contains(rt.base, "alpine") || !slices.ContainsFunc(glibcBases, func(p string) bool { return strings.HasPrefix(rt.base, p) }) {
		errorf("runs on %s; want a Debian 12 (bookworm) glibc base: %v", rt.base, glibcBases)
	}
	user := ""
	var exposed, entry []string
	files := map[string]string{} // path in the image -> stage:path it comes from
	for _, in := range rt.body {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			entry, _ = words(in.args)
		case "COPY":
			if w, _ := words(in.args); len(w) == 2 && in.flags["from"] != "" {
				files[w[1]] = in.flags["from"] + ":" + w[0]
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		errorf("runs as root; want a USER that is not")
	}
	if len(entry) == 0 {
		errorf("no ENTRYPOINT")
	} else if from, want := files[entry[0]], bst.name+":"+build.output; from != want {
		errorf("ENTRYPOINT %s is not the go build output (%s, got %q)", entry[0], want, from)
	}
	if port, err := listenPort(s, a); err == nil && !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
		errorf("does not EXPOSE %s, the port the service listens on", port)
	}
	if hc := s.HealthCheck; hc != nil && len(hc.Test) > 1 && hc.Test[0] == "CMD" {
		if _, ok := files[hc.Test[1]]; !ok {
			errorf("compose's health check runs %s, which the image does not contain", hc.Test[1])
		}
	}
}

// glibcBases are the accepted runtime bases: Debian 12, as the builder.
var glibcBases = []string{
	"gcr.io/distroless/base-debian12", "gcr.io/distroless/cc-debian12", "debian:bookworm", "debian:12",
}

func readGoWork(root string) (*modfile.WorkFile, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return nil, err
	}
	return modfile.ParseWork("go.work", data, nil)
}

// localModules are the module folders a service builds from: its own and
// those its go.mod replaces with a local path.
func localModules(root, module string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(root, module, "go.mod"))
	if err != nil {
		return nil, err
	}
	f, err := modfile.Parse(module+"/go.mod", data, nil)
	if err != nil {
		return nil, err
	}
	dirs := []string{module}
	for _, rep := range f.Replace {
		if modfile.IsDirectoryPath(rep.New.Path) {
			dirs = append(dirs, path.Clean(path.Join(module, rep.New.Path)))
		}
	}
	return dirs, nil
}

// checkDockerignore: each Dockerfile has its own ignore file, which keeps
// the secrets and the repository's history out of the context and lets in
// every file the Dockerfile copies.
func checkDockerignore(r *report, d *deployment) {
	for _, a := range apps {
		s, ok := d.service(r, a.name)
		if !ok || s.Build == nil {
			continue
		}
		name := s.Build.Dockerfile + ".dockerignore"
		f, err := os.Open(filepath.Join(s.Build.Context, name))
		if err != nil {
			r.errorf("%s: %v (the context is the repository root: without it .git and .run are sent)", a.name, err)
			continue
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			r.errorf("%s: %v", name, err)
			continue
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			r.errorf("%s: %v", name, err)
			continue
		}
		excluded := func(p string) bool {
			m, _, err := pm.MatchesUsingParentResults(p, patternmatcher.MatchInfo{})
			return err == nil && m
		}
		for _, p := range sensitivePaths {
			if !excluded(p) {
				r.errorf("%s: lets %s into the build context", name, p)
			}
		}
		text, err := os.ReadFile(filepath.Join(s.Build.Context, s.Build.Dockerfile))
		if err != nil {
			continue // reported by the Dockerfile check
		}
		stages, err := parseDockerfile(string(text))
		if err != nil {
			continue
		}
		fsys := os.DirFS(s.Build.Context)
		for _, st := range stages {
			for _, in := range st.body {
				if in.cmd != "COPY" || in.flags["from"] != "" {
					continue
				}
				w, _ := words(in.args)
				for _, src := range w[:max(len(w)-1, 0)] {
					src = strings.TrimSuffix(path.Clean(src), "/")
					_ = fs.WalkDir(fsys, src, func(p string, e fs.DirEntry, err error) error {
						if err != nil || e.IsDir() || buildLeftover(p) {
							return nil
						}
						if excluded(p) {
							r.errorf("%s: leaves out %s, which line %d of %s copies", name, p, in.line, s.Build.Dockerfile)
						}
						return nil
					})
				}
			}
		}
	}
}

// buildLeftover matches what the root .gitignore ignores inside the module
// folders, and the ignore files leave out on purpose.
func buildLeftover(p string) bool {
	return strings.HasSuffix(p, ".test") || strings.HasSuffix(p, ".out")
}

// repoRoot is the directory above this package that holds go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the test's directory")
		}
		dir = parent
	}
}
