package main

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// withSecrets returns the three required variables plus overrides.
func withSecrets(overrides map[string]string) map[string]string {
	vars := map[string]string{
		"SERVICE_TOKEN":       "svc-token",
		"ADMIN_TOKEN":         "admin-token",
		"CUSTOMER_JWT_SECRET": "jwt-secret",
	}
	for k, v := range overrides {
		vars[k] = v
	}
	return vars
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	defaults := Config{
		HTTPAddr:          "127.0.0.1:8080",
		MySQLDSN:          "root@tcp(127.0.0.1:3306)/orders?parseTime=true",
		MySQLMaxConns:     32,
		ProductURL:        "http://127.0.0.1:8081",
		KafkaBrokers:      []string{"127.0.0.1:9092"},
		ServiceToken:      "svc-token",
		AdminToken:        "admin-token",
		CustomerJWTSecret: "jwt-secret",
		ProductTimeout:    time.Second,
		SyncBudget:        3 * time.Second,
		RecoveryInterval:  time.Second,
		StuckAfter:        30 * time.Second,
		RateLimit:         60,
		RateWindow:        time.Minute,
		MaxQuantityWindow: 24 * time.Hour,
		Coalesce:          true,
		CoalesceLanes:     2,
		CoalesceMaxBatch:  200,
	}
	tests := []struct {
		name    string
		vars    map[string]string
		want    func(Config) Config
		wantErr []string // substrings the error must contain
	}{
		{name: "defaults", vars: withSecrets(nil), want: func(c Config) Config { return c }},
		{
			name: "overrides",
			vars: withSecrets(map[string]string{
				"ORDER_HTTP_ADDR":           ":9000",
				"ORDER_MYSQL_DSN":           "app:pw@tcp(db:3306)/orders_x?parseTime=true",
				"PRODUCT_URL":               "https://products.internal:8443",
				"KAFKA_BROKERS":             "k1:9092, k2:9092",
				"PRODUCT_TIMEOUT":           "250ms",
				"ORDER_SYNC_BUDGET":         "2s",
				"RECOVERY_INTERVAL":         "500ms",
				"STUCK_AFTER":               "1m",
				"ORDER_MYSQL_MAX_CONNS":     "8",
				"ORDER_RATE_LIMIT":          "0",
				"ORDER_RATE_WINDOW":         "10s",
				"ORDER_MAX_QUANTITY":        "4",
				"ORDER_MAX_QUANTITY_WINDOW": "1h",
				"ORDER_CORS_ORIGINS":        "https://shop.example.com, http://localhost:3000",
				"ORDER_COALESCE":            "off",
				"ORDER_COALESCE_LANES":      "2",
				"ORDER_COALESCE_MAX_BATCH":  "50",
			}),
			want: func(c Config) Config {
				c.HTTPAddr = ":9000"
				c.MySQLDSN = "app:pw@tcp(db:3306)/orders_x?parseTime=true"
				c.ProductURL = "https://products.internal:8443"
				c.KafkaBrokers = []string{"k1:9092", "k2:9092"}
				c.ProductTimeout = 250 * time.Millisecond
				c.SyncBudget = 2 * time.Second
				c.RecoveryInterval = 500 * time.Millisecond
				c.StuckAfter = time.Minute
				c.MySQLMaxConns = 8
				c.RateLimit, c.RateWindow = 0, 10*time.Second
				c.MaxQuantity, c.MaxQuantityWindow = 4, time.Hour
				c.CORSOrigins = []string{"https://shop.example.com", "http://localhost:3000"}
				c.Coalesce, c.CoalesceLanes, c.CoalesceMaxBatch = false, 2, 50
				return c
			},
		},
		{name: "missing service token", vars: withSecrets(map[string]string{"SERVICE_TOKEN": ""}), wantErr: []string{"SERVICE_TOKEN is required"}},
		{name: "missing admin token", vars: withSecrets(map[string]string{"ADMIN_TOKEN": ""}), wantErr: []string{"ADMIN_TOKEN is required"}},
		{name: "missing jwt secret", vars: withSecrets(map[string]string{"CUSTOMER_JWT_SECRET": ""}), wantErr: []string{"CUSTOMER_JWT_SECRET is required"}},
		{name: "all secrets missing", vars: map[string]string{}, wantErr: []string{"SERVICE_TOKEN", "ADMIN_TOKEN", "CUSTOMER_JWT_SECRET"}},
		{name: "bad duration", vars: withSecrets(map[string]string{"PRODUCT_TIMEOUT": "1"}), wantErr: []string{"PRODUCT_TIMEOUT"}},
		{name: "negative duration", vars: withSecrets(map[string]string{"ORDER_SYNC_BUDGET": "-3s"}), wantErr: []string{"ORDER_SYNC_BUDGET"}},
		{name: "zero duration", vars: withSecrets(map[string]string{"RECOVERY_INTERVAL": "0s"}), wantErr: []string{"RECOVERY_INTERVAL"}},
		{name: "bad stuck after", vars: withSecrets(map[string]string{"STUCK_AFTER": "soon"}), wantErr: []string{"STUCK_AFTER"}},
		{name: "bad address", vars: withSecrets(map[string]string{"ORDER_HTTP_ADDR": "8080"}), wantErr: []string{"ORDER_HTTP_ADDR"}},
		{name: "bad dsn", vars: withSecrets(map[string]string{"ORDER_MYSQL_DSN": "not a dsn"}), wantErr: []string{"ORDER_MYSQL_DSN"}},
		{name: "dsn without database", vars: withSecrets(map[string]string{"ORDER_MYSQL_DSN": "root@tcp(127.0.0.1:3306)/"}), wantErr: []string{"ORDER_MYSQL_DSN"}},
		{name: "relative product url", vars: withSecrets(map[string]string{"PRODUCT_URL": "products:8081"}), wantErr: []string{"PRODUCT_URL"}},
		{name: "bad brokers", vars: withSecrets(map[string]string{"KAFKA_BROKERS": "k1:9092,,k2"}), wantErr: []string{"KAFKA_BROKERS"}},
		{name: "negative rate limit", vars: withSecrets(map[string]string{"ORDER_RATE_LIMIT": "-1"}), wantErr: []string{"ORDER_RATE_LIMIT"}},
		{name: "origin with a path", vars: withSecrets(map[string]string{"ORDER_CORS_ORIGINS": "https://shop.example.com/app"}), wantErr: []string{"ORDER_CORS_ORIGINS"}},
		{name: "bad coalesce switch", vars: withSecrets(map[string]string{"ORDER_COALESCE": "yes"}), wantErr: []string{"ORDER_COALESCE"}},
		{name: "origin without scheme", vars: withSecrets(map[string]string{"ORDER_CORS_ORIGINS": "shop.example.com"}), wantErr: []string{"ORDER_CORS_ORIGINS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(env(tt.vars))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("parseConfig = %+v, want an error naming %v", got, tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %s", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if want := tt.want(defaults); !reflect.DeepEqual(got, want) {
				t.Fatalf("config = %+v, want %+v", got, want)
			}
		})
	}
}

func TestConfigLogMasksSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig(env(withSecrets(map[string]string{
		"ORDER_MYSQL_DSN": "app:hunter2@tcp(db:3306)/orders?parseTime=true",
	})))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("start", "config", cfg)
	out := buf.String()
	for _, secret := range []string{"svc-token", "admin-token", "jwt-secret", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line reveals %q: %s", secret, out)
		}
	}
	for _, want := range []string{"app:***@tcp(db:3306)/orders", "SERVICE_TOKEN", "STUCK_AFTER", "30s"} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %q: %s", want, out)
		}
	}
}
