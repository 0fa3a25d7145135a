package httpapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// Secrets of the router the input tests and fuzzers drive.
const (
	inputJWTSecret  = "input-test-jwt-secret"
	inputAdminToken = "input-test-admin-token"
)

// recordingService is the customer API's service as the input tests need
// it: it records what the router handed it and validates items as
// internal/ordering.Service does, without a database.
type recordingService struct {
	mu     sync.Mutex
	placed []placeCall
	listed []listCall
}

type placeCall struct {
	customer, key string
	items         []contract.Item
}

type listCall struct {
	customer, cursor string
	limit            int
}

func (s *recordingService) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.placed, s.listed = nil, nil
}

func (s *recordingService) calls() ([]placeCall, []listCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.placed, s.listed
}

func (s *recordingService) Place(_ context.Context, customerID, key string, items []contract.Item) (order.Order, bool, error) {
	s.mu.Lock()
	s.placed = append(s.placed, placeCall{customerID, key, items})
	s.mu.Unlock()
	if errs := contract.ValidateItems(items); len(errs) > 0 {
		return order.Order{}, false, &order.ValidationError{Fields: errs}
	}
	now := time.Now().UTC()
	o := order.New("0199a1b2-0000-7000-8000-000000000001", "0199a1b2-0000-7000-8000-000000000002", customerID, items, now, now)
	o.Status = order.StatusConfirmed
	return o, true, nil
}

func (s *recordingService) Get(context.Context, string, string) (order.Order, error) {
	return order.Order{}, order.ErrNotFound
}

func (s *recordingService) List(_ context.Context, customerID, cursor string, limit int) (order.Page, error) {
	s.mu.Lock()
	s.listed = append(s.listed, listCall{customerID, cursor, limit})
	s.mu.Unlock()
	return order.Page{}, nil
}

func (s *recordingService) Cancel(context.Context, string, string) (order.Order, error) {
	return order.Order{}, order.ErrNotFound
}

// recordingOps records the queries of GET /ops/orders and GET /ops/stats.
type recordingOps struct {
	mu       sync.Mutex
	statuses [][]order.Status
	limits   []int
	windows  []order.Window
}

func (o *recordingOps) Orders(_ context.Context, statuses []order.Status, limit int) ([]order.Order, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statuses, o.limits = append(o.statuses, statuses), append(o.limits, limit)
	return nil, nil
}

func (o *recordingOps) Recheck(context.Context, string) error { return order.ErrNotFound }

func (o *recordingOps) Activity(_ context.Context, w order.Window, _ time.Time, _ int) (order.Activity, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.windows = append(o.windows, w)
	return order.Activity{Window: w}, nil
}

func (o *recordingOps) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statuses, o.limits, o.windows = nil, nil, nil
}

// inputRouter is the real router over the recording fakes.
func inputRouter() (http.Handler, *recordingService, *recordingOps) {
	svc, ops := &recordingService{}, &recordingOps{}
	return httpapi.New(httpapi.Config{
		Service:    svc,
		Catalog:    accessStubs{},
		Readiness:  accessStubs{},
		JWTSecret:  []byte(inputJWTSecret),
		Ops:        ops,
		AdminToken: inputAdminToken,
		StuckAfter: time.Minute,
		Activity:   ops,
	}), svc, ops
}

// customerJWT is a valid customer token for sub.
func customerJWT(t testing.TB, sub string) string { return hs256(t, inputJWTSecret, sub) }

// hs256 is a customer token for sub signed with secret, valid for an hour.
func hs256(t testing.TB, secret, sub string) string {
	t.Helper()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256,
		jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return token
}

// serve sends one request to h. The query of target is set as is, so that a
// fuzzer's query cannot make building the request fail.
func serve(h http.Handler, method, target, authorization, body string) *httptest.ResponseRecorder {
	path, rawQuery, _ := strings.Cut(target, "?")
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.URL.RawQuery = rawQuery
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// problemCode returns the code of a problem+json answer, "" for anything
// else.
func problemCode(rec *httptest.ResponseRecorder) string {
	if rec.Header().Get("Content-Type") != "application/problem+json" {
		return ""
	}
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != rec.Code {
		return ""
	}
	return p.Code
}

// TestMassAssignmentIsRejected: the customer comes from the token and prices,
// status, ids and totals from the service; a body that tries to set any of
// them, at the top or in a line, in any letter case, is 400
// validation_failed and never reaches the service.
func TestMassAssignmentIsRejected(t *testing.T) {
	h, svc, _ := inputRouter()
	auth := "Bearer " + customerJWT(t, "alice")
	const item = `"productId":1,"quantity":2`
	fields := []string{
		`"customerId":"mallory"`, `"customerID":"mallory"`, `"CUSTOMERID":"mallory"`, `"customer":"mallory"`, `"sub":"mallory"`,
		`"price":1`, `"priceCents":1`, `"unitPriceCents":1`, `"UnitPriceCents":1`, `"totalCents":1`, `"total":1`,
		`"status":"CONFIRMED"`, `"attemptId":"0199a1b2-0000-7000-8000-000000000003"`, `"orderId":"0199a1b2-0000-7000-8000-000000000004"`,
		`"id":"0199a1b2-0000-7000-8000-000000000004"`, `"attempts":[]`, `"reason":null`, `"createdAt":"2020-01-01T00:00:00Z"`,
	}
	for _, field := range fields {
		for _, body := range []string{
			`{"items":[{` + item + `}],` + field + `}`,
			`{` + field + `,"items":[{` + item + `}]}`,
			`{"items":[{` + item + `,` + field + `}]}`,
			`{"items":[{` + field + `,` + item + `}]}`,
		} {
			t.Run(body, func(t *testing.T) {
				svc.reset()
				rec := serve(h, http.MethodPost, "/orders", auth, body)
				if rec.Code != http.StatusBadRequest || problemCode(rec) != "validation_failed" {
					t.Fatalf("status = %d %s, want 400 problem validation_failed", rec.Code, rec.Body)
				}
				if placed, _ := svc.calls(); len(placed) != 0 {
					t.Fatalf("the service was asked to place %+v", placed)
				}
			})
		}
	}

	t.Run("clean body", func(t *testing.T) {
		svc.reset()
		rec := serve(h, http.MethodPost, "/orders", auth, `{"items":[{`+item+`}]}`)
		placed, _ := svc.calls()
		if rec.Code != http.StatusCreated || len(placed) != 1 {
			t.Fatalf("status = %d %s with %d calls, want 201 and one call", rec.Code, rec.Body, len(placed))
		}
		want := placeCall{customer: "alice", items: []contract.Item{{ProductID: 1, Quantity: 2}}}
		if !reflect.DeepEqual(placed[0], want) {
			t.Fatalf("placed %+v, want %+v", placed[0], want)
		}
	})
}

// withinLimits checks items against the contract's limits, written out
// independently of contract.ValidateItems.
func withinLimits(items []contract.Item) error {
	if len(items) < 1 || len(items) > 100 {
		return fmt.Errorf("%d lines", len(items))
	}
	seen := map[int64]bool{}
	for _, it := range items {
		if it.ProductID < 1 || it.Quantity < 1 || it.Quantity > 10_000 || seen[it.ProductID] {
			return fmt.Errorf("line %+v", it)
		}
		seen[it.ProductID] = true
	}
	return nil
}

// onlyKeys reports whether raw is a JSON object whose keys all match one of
// names, as encoding/json matches them (ignoring case), and returns its
// values.
func onlyKeys(raw json.RawMessage, names ...string) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, false
	}
	for k := range obj {
		ok := false
		for _, n := range names {
			ok = ok || strings.EqualFold(k, n)
		}
		if !ok {
			return nil, false
		}
	}
	return obj, true
}

// FuzzPlaceOrderBody sends arbitrary bodies to POST /orders. Invariants: no
// 5xx; the service is reached only by a JSON object of items holding
// productId and quantity, nothing else, and then with exactly the items the
// body holds; otherwise the answer is a 400 or 413 problem; a 201 carries
// items within the contract's limits; the items, encoded again and sent
// again, reach the service unchanged.
func FuzzPlaceOrderBody(f *testing.F) {
	h, svc, _ := inputRouter()
	auth := "Bearer " + customerJWT(f, "alice")
	f.Fuzz(func(t *testing.T, body string) {
		svc.reset()
		rec := serve(h, http.MethodPost, "/orders", auth, body)
		if rec.Code >= 500 {
			t.Fatalf("status = %d %s", rec.Code, rec.Body)
		}
		placed, _ := svc.calls()
		if len(placed) == 0 {
			code := problemCode(rec)
			if !(rec.Code == http.StatusBadRequest && code == "validation_failed") &&
				!(rec.Code == http.StatusRequestEntityTooLarge && code == "body_too_large") {
				t.Fatalf("refused with %d %q %s, want a 400 or 413 problem", rec.Code, code, rec.Body)
			}
			return
		}
		if len(placed) != 1 || placed[0].customer != "alice" {
			t.Fatalf("placed %+v, want one order of alice", placed)
		}
		top, ok := onlyKeys(json.RawMessage(body), "items")
		if string(bytes.TrimSpace([]byte(body))) == "null" && len(placed[0].items) == 0 {
			ok = true // decodes as an empty request, which the service refuses
		}
		if !ok {
			t.Fatalf("the service was reached by a body with fields other than items: %s", body)
		}
		for k, v := range top {
			var lines []json.RawMessage
			if err := json.Unmarshal(v, &lines); err != nil && string(bytes.TrimSpace(v)) != "null" {
				t.Fatalf("%s is not a list: %s", k, v)
			}
			for _, l := range lines {
				if _, ok := onlyKeys(l, "productId", "quantity"); !ok && string(bytes.TrimSpace(l)) != "null" {
					t.Fatalf("the service was reached by a line with other fields: %s", l)
				}
			}
		}
		var want struct{ Items []contract.Item }
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("the service was reached by a body encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(placed[0].items, want.Items) {
			t.Fatalf("placed %+v, the body holds %+v", placed[0].items, want.Items)
		}
		if rec.Code != http.StatusCreated {
			if err := withinLimits(placed[0].items); err == nil {
				t.Fatalf("items within the limits answered %d %s", rec.Code, rec.Body)
			}
			return
		}
		if err := withinLimits(placed[0].items); err != nil {
			t.Fatalf("201 for items beyond the limits: %v", err)
		}
		again, err := json.Marshal(map[string]any{"items": placed[0].items})
		if err != nil {
			t.Fatal(err)
		}
		svc.reset()
		if rec := serve(h, http.MethodPost, "/orders", auth, string(again)); rec.Code != http.StatusCreated {
			t.Fatalf("the items encoded again answered %d %s", rec.Code, rec.Body)
		}
		if replaced, _ := svc.calls(); len(replaced) != 1 || !reflect.DeepEqual(replaced[0].items, placed[0].items) {
			t.Fatalf("the items encoded again reached the service as %+v, want %+v", replaced, placed[0].items)
		}
	})
}

// FuzzCustomerToken sends arbitrary bearer tokens to GET /orders: the JWT
// verification path. Invariants: a token is let in only if, checked
// independently, its header names HS256, its signature is the HMAC-SHA256 of
// the first two segments under the secret, its exp is a number in the future
// and its sub a string of 1 to 128 characters without surrounding white
// space, which is then the customer the service is asked about; anything
// else is a 401 problem.
func FuzzCustomerToken(f *testing.F) {
	h, svc, _ := inputRouter()
	f.Fuzz(func(t *testing.T, token string) {
		svc.reset()
		rec := serve(h, http.MethodGet, "/orders", "Bearer "+token, "")
		_, listed := svc.calls()
		if len(listed) == 0 {
			if rec.Code != http.StatusUnauthorized || problemCode(rec) != "unauthorized" {
				t.Fatalf("refused with %d %s, want 401 problem unauthorized", rec.Code, rec.Body)
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("admitted with %d %s", rec.Code, rec.Body)
		}
		sub, err := verifyIndependently(token, []byte(inputJWTSecret), time.Now())
		if err != nil {
			t.Fatalf("token %q was let in, but %v", token, err)
		}
		if listed[0].customer != sub {
			t.Fatalf("customer = %q, want sub %q", listed[0].customer, sub)
		}
	})
}

// TestCustomerIDWithSurroundingSpacesIsRefused: the orders database takes
// "alice " for "alice" (PAD SPACE), so a token whose sub has surrounding
// white space would read alice's orders; it is a 401 and reaches nothing.
func TestCustomerIDWithSurroundingSpacesIsRefused(t *testing.T) {
	h, svc, _ := inputRouter()
	for _, sub := range []string{"alice ", " alice", "alice\t", "alice\n", "alice\u00a0", "\u3000alice"} {
		svc.reset()
		rec := serve(h, http.MethodGet, "/orders", "Bearer "+customerJWT(t, sub), "")
		if _, listed := svc.calls(); rec.Code != http.StatusUnauthorized || problemCode(rec) != "unauthorized" || len(listed) != 0 {
			t.Errorf("sub %q: status %d %s with %d calls, want 401 unauthorized and none", sub, rec.Code, rec.Body, len(listed))
		}
	}
	if rec := serve(h, http.MethodGet, "/orders", "Bearer "+customerJWT(t, "alice smith"), ""); rec.Code != http.StatusOK {
		t.Errorf("sub with an inner space: status %d %s, want 200", rec.Code, rec.Body)
	}
}

// verifyIndependently checks a customer token the way the contract states
// it, without the jwt library, and returns its sub.
func verifyIndependently(token string, secret []byte, now time.Time) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%d segments", len(parts))
	}
	dec := func(s string) ([]byte, error) {
		return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	rawHeader, err := dec(parts[0])
	if err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(rawHeader, &header); err != nil || header.Alg != "HS256" {
		return "", fmt.Errorf("header %s does not name HS256", rawHeader)
	}
	sig, err := dec(parts[2])
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return "", fmt.Errorf("the signature is not the HMAC under the secret")
	}
	rawClaims, err := dec(parts[1])
	if err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	var claims struct {
		Sub *string  `json:"sub"`
		Exp *float64 `json:"exp"`
	}
	if err := json.Unmarshal(rawClaims, &claims); err != nil {
		return "", fmt.Errorf("claims %s: %w", rawClaims, err)
	}
	if claims.Exp == nil || time.Unix(int64(*claims.Exp), 0).Before(now.Add(-time.Second)) {
		return "", fmt.Errorf("claims %s: no exp in the future", rawClaims)
	}
	if claims.Sub == nil || *claims.Sub == "" || !utf8.ValidString(*claims.Sub) || utf8.RuneCountInString(*claims.Sub) > 128 ||
		strings.TrimSpace(*claims.Sub) != *claims.Sub {
		return "", fmt.Errorf("claims %s: no usable sub", rawClaims)
	}
	return *claims.Sub, nil
}

// FuzzOpsQuery sends arbitrary query strings to the routes that parse their
// parameters by hand: GET /ops/orders (status, limit), GET /ops/stats
// (window) and GET /orders (limit, cursor). Invariants: no 5xx; a query
// that reaches the store asks for 1 to 500 orders in known statuses, a
// window of 1 minute to 1 hour, or passes the customer's limit and cursor on
// as given; anything else is a 400 validation problem.
func FuzzOpsQuery(f *testing.F) {
	h, svc, ops := inputRouter()
	admin := "Bearer " + inputAdminToken
	cust := "Bearer " + customerJWT(f, "alice")
	valid := map[order.Status]bool{order.StatusPending: true, order.StatusConfirmed: true, order.StatusFailed: true,
		order.StatusCompensating: true, order.StatusCancelling: true, order.StatusCancelled: true}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		refusedWell := func(rec *httptest.ResponseRecorder) {
			t.Helper()
			if rec.Code != http.StatusBadRequest || problemCode(rec) != "validation_failed" {
				t.Fatalf("?%s answered %d %s, want 200 or a 400 validation problem", rawQuery, rec.Code, rec.Body)
			}
		}
		q, _ := url.ParseQuery(rawQuery)

		ops.reset()
		if rec := serve(h, http.MethodGet, "/ops/orders?"+rawQuery, admin, ""); len(ops.limits) == 0 {
			refusedWell(rec)
		} else {
			if l := ops.limits[0]; l < 1 || l > 500 {
				t.Fatalf("?%s asked for %d orders", rawQuery, l)
			}
			if len(ops.statuses[0]) == 0 {
				t.Fatalf("?%s asked for no status", rawQuery)
			}
			for _, s := range ops.statuses[0] {
				if !valid[s] {
					t.Fatalf("?%s asked for status %q", rawQuery, s)
				}
			}
		}

		if rec := serve(h, http.MethodGet, "/ops/stats?"+rawQuery, admin, ""); len(ops.windows) == 0 {
			refusedWell(rec)
		} else if span := ops.windows[0].Bucket * time.Duration(ops.windows[0].Buckets); span < 59*time.Second || span > time.Hour {
			t.Fatalf("?%s asked for a window of %s", rawQuery, span)
		}

		svc.reset()
		rec := serve(h, http.MethodGet, "/orders?"+rawQuery, cust, "")
		_, listed := svc.calls()
		if len(listed) == 0 {
			refusedWell(rec)
			return
		}
		want := listCall{customer: "alice", cursor: q.Get("cursor"), limit: order.DefaultPageSize}
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("?%s: limit %q passed on", rawQuery, s)
			}
			want.limit = n
		}
		if listed[0] != want {
			t.Fatalf("?%s listed %+v, want %+v", rawQuery, listed[0], want)
		}
	})
}
