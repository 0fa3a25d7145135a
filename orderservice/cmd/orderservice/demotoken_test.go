package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func demoToken(t *testing.T, secret, sub string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: sub, ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStorefrontDemoToken(t *testing.T) {
	t.Parallel()
	later := time.Now().Add(time.Hour)
	good := demoToken(t, "jwt-secret", "demo-shopper", later)
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr string // "" means accepted
	}{
		{"unset", withSecrets(nil), ""},
		{"local demo", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": good}), ""},
		{"localhost", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": good, "ORDER_HTTP_ADDR": "localhost:8080"}), ""},
		{"ipv6 loopback", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": good, "ORDER_HTTP_ADDR": "[::1]:8080"}), ""},
		{"all interfaces", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": good, "ORDER_HTTP_ADDR": ":8080"}), "loopback"},
		{"public address", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": good, "ORDER_HTTP_ADDR": "10.0.0.5:8080"}), "loopback"},
		{"other secret", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": demoToken(t, "other", "demo-shopper", later)}), "CUSTOMER_JWT_SECRET"},
		{"expired", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": demoToken(t, "jwt-secret", "demo-shopper", time.Now().Add(-time.Minute))}), "expired"},
		{"no subject", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": demoToken(t, "jwt-secret", "", later)}), "sub"},
		{"not a token", withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": "hello"}), "STOREFRONT_DEMO_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseConfig(env(tt.vars))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseConfig: %v", err)
				}
				if cfg.StorefrontDemoToken != tt.vars["STOREFRONT_DEMO_TOKEN"] {
					t.Errorf("StorefrontDemoToken = %q, want %q", cfg.StorefrontDemoToken, tt.vars["STOREFRONT_DEMO_TOKEN"])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "STOREFRONT_DEMO_TOKEN") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseConfig error = %v, want one naming STOREFRONT_DEMO_TOKEN and %q", err, tt.wantErr)
			}
		})
	}
}

func TestStorefrontDemoTokenMasked(t *testing.T) {
	t.Parallel()
	tok := demoToken(t, "jwt-secret", "demo-shopper", time.Now().Add(time.Hour))
	cfg, err := parseConfig(env(withSecrets(map[string]string{"STOREFRONT_DEMO_TOKEN": tok})))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("start", "config", cfg)
	out := buf.String()
	if strings.Contains(out, tok) || strings.Contains(out, strings.Split(tok, ".")[2]) {
		t.Errorf("log line reveals the demo token: %s", out)
	}
	if !strings.Contains(out, `"STOREFRONT_DEMO_TOKEN":"***`) {
		t.Errorf("log line lacks the masked STOREFRONT_DEMO_TOKEN: %s", out)
	}
}
