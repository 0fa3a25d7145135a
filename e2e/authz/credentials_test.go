package authz_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockfence/stockfence/e2e/stack"
)

// class is who may call a route.
type class string

const (
	public   class = "public"
	customer class = "customer" // an HS256 customer JWT with sub and exp
	service  class = "service"  // SERVICE_TOKEN
	admin    class = "admin"    // ADMIN_TOKEN
)

// credential is one Authorization header (none when empty) and the class it
// opens ("" for none).
type credential struct {
	name   string
	header string
	opens  class
}

// credentials returns every credential of the matrix: the three valid ones
// and everything that must open nothing.
func credentials(t *testing.T, s *system) []credential {
	t.Helper()
	now := time.Now()
	secret := []byte(s.JWTSecret)
	valid := jwt.MapClaims{"sub": alice, "exp": now.Add(time.Hour).Unix()}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(token string) string { return "Bearer " + token }
	return []credential{
		{"customer JWT", bearer(s.CustomerToken(alice, time.Hour)), customer},
		{"service token", bearer(s.ServiceToken), service},
		{"admin token", bearer(s.AdminToken), admin},

		{"no Authorization header", "", ""},
		{"Bearer without a token", "Bearer", ""},
		{"Bearer and a blank", "Bearer ", ""},
		{"admin token without a scheme", s.AdminToken, ""},
		{"admin token as Basic", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+s.AdminToken)), ""},
		{"service token as Token scheme", "Token " + s.ServiceToken, ""},
		{"wrong token", bearer(stack.NewSecret()), ""},
		{"admin token cut short", bearer(s.AdminToken[:len(s.AdminToken)-1]), ""},
		{"admin token with a suffix", bearer(s.AdminToken + "0"), ""},
		{"service token with the admin token", bearer(s.ServiceToken + " " + s.AdminToken), ""},
		{"JWT secret as a bearer token", bearer(s.JWTSecret), ""},
		{"expired JWT", bearer(s.CustomerToken(alice, -time.Minute)), ""},
		{"JWT not valid yet", bearer(sign(t, jwt.SigningMethodHS256, secret,
			jwt.MapClaims{"sub": alice, "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()})), ""},
		{"alg none JWT", bearer(sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)), ""},
		{"JWT signed with another key", bearer(stack.SignCustomerToken("not-the-secret", alice, time.Hour)), ""},
		{"JWT without exp", bearer(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": alice})), ""},
		{"JWT without sub", bearer(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})), ""},
		{"JWT with an empty sub", bearer(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "", "exp": now.Add(time.Hour).Unix()})), ""},
		{"HS384 JWT with the right key", bearer(sign(t, jwt.SigningMethodHS384, secret, valid)), ""},
		{"RS256-labelled JWT with an HMAC of the right key", bearer(mislabelled(t, "RS256", secret, valid)), ""},
		{"RS256 JWT", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, valid)), ""},
		{"customer JWT with its signature cut", bearer(truncated(s.CustomerToken(alice, time.Hour))), ""},
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return token
}

// mislabelled returns a JWT whose header names alg but whose signature is
// HMAC-SHA256 with key: the algorithm-confusion attack on a verifier that
// picks its algorithm from the token.
func mislabelled(t *testing.T, alg string, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	enc := base64.RawURLEncoding
	header, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// truncated drops the last character of a token's signature.
func truncated(token string) string { return token[:len(token)-1] }
