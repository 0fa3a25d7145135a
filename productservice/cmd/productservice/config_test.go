package main

import (
	"strings"
	"testing"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string
	}{
		{"tokens set", map[string]string{"SERVICE_TOKEN": "s", "ADMIN_TOKEN": "a"}, nil},
		{"nothing set", map[string]string{}, []string{"SERVICE_TOKEN", "ADMIN_TOKEN"}},
		{"admin missing", map[string]string{"SERVICE_TOKEN": "s"}, []string{"ADMIN_TOKEN"}},
		{"same tokens", map[string]string{"SERVICE_TOKEN": "x", "ADMIN_TOKEN": "x"}, []string{"must differ"}},
		{"bad dsn", map[string]string{"SERVICE_TOKEN": "s", "ADMIN_TOKEN": "a", "PRODUCT_MYSQL_DSN": "nope"}, []string{"PRODUCT_MYSQL_DSN"}},
		{"bad pool size", map[string]string{"SERVICE_TOKEN": "s", "ADMIN_TOKEN": "a", "PRODUCT_MYSQL_MAX_CONNS": "0"}, []string{"PRODUCT_MYSQL_MAX_CONNS"}},
		{"bad brokers", map[string]string{"SERVICE_TOKEN": "s", "ADMIN_TOKEN": "a", "KAFKA_BROKERS": "k1:9092,,k2:9092"}, []string{"KAFKA_BROKERS"}},
		{"broker without port", map[string]string{"SERVICE_TOKEN": "s", "ADMIN_TOKEN": "a", "KAFKA_BROKERS": "k1"}, []string{"KAFKA_BROKERS"}},
		{"two brokers", map[string]string{"SERVICE_TOKEN": "s", "ADMIN_TOKEN": "a", "KAFKA_BROKERS": "k1:9092, k2:9092"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(env(tt.env))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				if cfg.HTTPAddr != "127.0.0.1:8081" || !strings.Contains(cfg.MySQLDSN, "/products") {
					t.Fatalf("defaults not applied: %+v", cfg)
				}
				return
			}
			if err == nil {
				t.Fatal("err = nil, want one")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to name %q", err, w)
				}
			}
		})
	}
}

func TestLogValueMasksSecrets(t *testing.T) {
	cfg, err := parseConfig(env(map[string]string{
		"SERVICE_TOKEN": "service-secret", "ADMIN_TOKEN": "admin-secret",
		"PRODUCT_MYSQL_DSN": "app:db-password@tcp(db:3306)/products",
	}))
	if err != nil {
		t.Fatal(err)
	}
	logged := cfg.LogValue().String()
	for _, secret := range []string{"service-secret", "admin-secret", "db-password"} {
		if strings.Contains(logged, secret) {
			t.Errorf("logged configuration reveals %q: %s", secret, logged)
		}
	}
}
