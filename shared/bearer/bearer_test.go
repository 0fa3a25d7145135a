package bearer_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stockfence/stockfence/shared/bearer"
)

func TestRequire(t *testing.T) {
	h := bearer.Require("s3cret")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"right token", "Bearer s3cret", http.StatusNoContent},
		{"scheme is case-insensitive", "bearer s3cret", http.StatusNoContent},
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer s3cre", http.StatusUnauthorized},
		{"longer token", "Bearer s3cret!", http.StatusUnauthorized},
		{"basic scheme", "Basic s3cret", http.StatusUnauthorized},
		{"empty token", "Bearer ", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d", rec.Code, tt.want)
			}
			if rec.Code == http.StatusUnauthorized && rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("401 content type = %q", rec.Header().Get("Content-Type"))
			}
		})
	}
}
