package httpapi

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockfence/stockfence/shared/bearer"
)

// maxCustomerIDLen is the width of orders.customer_id, in characters.
const maxCustomerIDLen = 128

type customerKey struct{}

// authenticate admits requests that carry "Authorization: Bearer <JWT>"
// signed with HS256 and secret, with an unexpired exp and a sub of 1 to 128
// characters without surrounding white space, the customer id. Anything else
// (no token, another algorithm including none, a bad signature, a missing or
// past exp, an unusable sub) is answered 401.
//
// The orders database compares customer ids with a PAD SPACE collation, in
// which "alice " equals "alice": a sub with trailing spaces would read
// another customer's orders, so surrounding white space is refused outright.
func authenticate(secret []byte) func(http.Handler) http.Handler {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	key := func(*jwt.Token) (any, error) { return secret, nil }
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := bearer.Token(r)
			if !ok {
				bearer.Unauthorized(w, "a customer bearer token is required")
				return
			}
			var claims jwt.RegisteredClaims
			if _, err := parser.ParseWithClaims(raw, &claims, key); err != nil {
				bearer.Unauthorized(w, "the bearer token is invalid or expired")
				return
			}
			sub := claims.Subject
			if sub == "" || !utf8.ValidString(sub) || utf8.RuneCountInString(sub) > maxCustomerIDLen || strings.TrimSpace(sub) != sub {
				bearer.Unauthorized(w, "the bearer token must name the customer in sub (1 to 128 characters, no surrounding spaces)")
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), customerKey{}, sub)))
		})
	}
}

// customerID returns the authenticated customer; authenticate guarantees it
// is set on every customer route.
func customerID(ctx context.Context) string {
	id, _ := ctx.Value(customerKey{}).(string)
	return id
}
