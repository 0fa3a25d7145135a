package bearer_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stockfence/stockfence/shared/bearer"
)

// FuzzRequire sends arbitrary Authorization headers to a handler guarded by
// two tokens. Invariants: a request gets through exactly when the header is
// the Bearer scheme (in any letter case), one space, and one of the tokens,
// byte for byte; every other request is a 401 problem with a challenge; and
// Equal agrees with ==.
func FuzzRequire(f *testing.F) {
	tokens := []string{"s3cret-service-token", "s3cret-admin-token"}
	h := bearer.Require(tokens...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		want := false
		if len(header) > len("Bearer ") && strings.EqualFold(header[:len("Bearer ")], "Bearer ") {
			for _, tok := range tokens {
				want = want || header[len("Bearer "):] == tok
			}
		}
		switch {
		case want && rec.Code != http.StatusNoContent:
			t.Fatalf("%q refused with %d", header, rec.Code)
		case !want && rec.Code == http.StatusNoContent:
			t.Fatalf("%q let in", header)
		case !want && (rec.Code != http.StatusUnauthorized ||
			rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("WWW-Authenticate") == ""):
			t.Fatalf("%q answered %d %q, want a 401 problem with a challenge", header, rec.Code, rec.Header().Get("Content-Type"))
		}
		_, got, _ := strings.Cut(header, " ")
		for _, tok := range tokens {
			if bearer.Equal(got, tok) != (got == tok) {
				t.Fatalf("Equal(%q, %q) = %v", got, tok, !(got == tok))
			}
		}
	})
}
