// Package bearer checks static bearer tokens (the service and admin tokens)
// in constant time.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/stockfence/stockfence/shared/problem"
)

// Token returns the credentials of an "Authorization: Bearer <token>" header.
func Token(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// Equal compares two secrets in time independent of where they differ and of
// their lengths (both are hashed first).
func Equal(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Require lets a request through only if it carries one of the tokens.
// Anything else is answered 401 unauthorized with a problem body.
func Require(tokens ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := Token(r)
			if ok {
				for _, want := range tokens {
					if Equal(got, want) {
						next.ServeHTTP(w, r)
						return
					}
				}
			}
			Unauthorized(w, "a valid bearer token is required")
		})
	}
}

// Unauthorized writes the 401 problem with a WWW-Authenticate challenge.
func Unauthorized(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="stockfence"`)
	problem.Write(w, problem.New(http.StatusUnauthorized, problem.CodeUnauthorized, detail))
}
