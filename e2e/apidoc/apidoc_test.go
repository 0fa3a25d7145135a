// Package apidoc_test proves that the OpenAPI documents the services serve at
// GET /openapi.yaml describe what they really do. It starts both real
// services (built binaries, fresh databases, the embedded Kafka broker),
// fetches each document from its running service, and sends real requests
// covering every documented operation and the main error cases. Every
// request is checked against the document (a request the test means to be
// invalid must be rejected by the document too), and every response's
// status, headers and body are validated with kin-openapi; a status the
// document does not list for the operation, a missing required header or a
// body that does not match its schema fails the test. At the end, every
// documented operation must have been exercised.
package apidoc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/stockfence/stockfence/e2e/stack"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	binDir = stack.BuildForTests()
	os.Exit(m.Run())
}

// Names of the component responses that describe what a path or a method
// the document does not list answers.
const (
	noSuchRoute      = "NoSuchRoute"
	methodNotAllowed = "MethodNotAllowed"
)

// apiDoc is one running service together with the document it serves, and
// what the test has exercised of it.
type apiDoc struct {
	t      *testing.T
	name   string
	base   string
	doc    *openapi3.T
	router routers.Router
	client *http.Client

	mu sync.Mutex
	// seen maps "METHOD /path/template" to the statuses it answered.
	seen map[string]map[int]bool
}

// loadDoc fetches base/openapi.yaml from the running service, checks that
// it is a valid OpenAPI 3 document, and routes requests with it.
func loadDoc(t *testing.T, name, base string) *apiDoc {
	t.Helper()
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(base + "/openapi.yaml")
	if err != nil {
		t.Fatalf("%s: GET /openapi.yaml: %v", name, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: GET /openapi.yaml = %d, %v", name, resp.StatusCode, err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("%s: load the served document: %v", name, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s: the served document is not valid OpenAPI 3: %v", name, err)
	}
	for _, c := range []string{noSuchRoute, methodNotAllowed} {
		if doc.Components == nil || doc.Components.Responses[c] == nil {
			t.Fatalf("%s: the document has no components.responses.%s", name, c)
		}
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("%s: route with the document: %v", name, err)
	}
	return &apiDoc{t: t, name: name, base: base, doc: doc, router: router, client: client, seen: map[string]map[int]bool{}}
}

// call is one request and what the test expects of it.
type call struct {
	method string
	// path is the path and query, e.g. "/orders?limit=1".
	path  string
	token string
	// body is sent as JSON; a string or []byte is sent as is.
	body    any
	headers map[string]string
	// status is the status the service must answer.
	status int
	// invalid says the request breaks the document (a bad body, parameter
	// or missing token): the document must reject it, which proves that it
	// states the constraint the service enforces.
	invalid bool
}

// response is what the service answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d %s: %v", r.status, r.body, err)
	}
}

// do sends c, checks the request and the response against the document and
// the expected status, and records the operation as exercised.
func (d *apiDoc) do(c call) response {
	d.t.Helper()
	var raw []byte
	switch b := c.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			d.t.Fatalf("encode body of %s %s: %v", c.method, c.path, err)
		}
	}
	newRequest := func() *http.Request {
		var body io.Reader
		if c.body != nil {
			body = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(d.t.Context(), c.method, d.base+c.path, body)
		if err != nil {
			d.t.Fatalf("build %s %s: %v", c.method, c.path, err)
		}
		if c.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		return req
	}
	what := fmt.Sprintf("%s: %s %s", d.name, c.method, c.path)

	// The request, as the document sees it.
	checked := newRequest()
	route, params, routeErr := d.router.FindRoute(checked)
	var reqInput *openapi3filter.RequestValidationInput
	switch {
	case routeErr == nil:
		reqInput = &openapi3filter.RequestValidationInput{
			Request: checked, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true},
		}
		err := openapi3filter.ValidateRequest(d.t.Context(), reqInput)
		switch {
		case err != nil && !c.invalid:
			d.t.Errorf("%s: the document rejects this request: %v", what, err)
		case err == nil && c.invalid:
			d.t.Errorf("%s: the document accepts this request, which the test sends as invalid", what)
		}
	case errors.Is(routeErr, routers.ErrPathNotFound):
		route = d.unlisted(checked, noSuchRoute, http.StatusNotFound)
	case errors.Is(routeErr, routers.ErrMethodNotAllowed):
		route = d.unlisted(checked, methodNotAllowed, http.StatusMethodNotAllowed)
	default:
		d.t.Fatalf("%s: find route: %v", what, routeErr)
	}
	if reqInput == nil {
		reqInput = &openapi3filter.RequestValidationInput{Request: checked, Route: route}
	}

	// The request itself.
	resp, err := d.client.Do(newRequest())
	if err != nil {
		d.t.Fatalf("%s: %v", what, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		d.t.Fatalf("%s: read body: %v", what, err)
	}
	got := response{status: resp.StatusCode, header: resp.Header, body: body}
	if c.status != 0 && got.status != c.status {
		d.t.Errorf("%s = %d %s, want %d", what, got.status, body, c.status)
	}
	if err := d.validate(reqInput, got); err != nil {
		d.t.Errorf("%s: the response does not match the document: %v\nresponse: %d %v\n%s", what, err, got.status, got.header, body)
	}
	if routeErr == nil {
		d.mu.Lock()
		op := route.Method + " " + route.Path
		if d.seen[op] == nil {
			d.seen[op] = map[int]bool{}
		}
		d.seen[op][got.status] = true
		d.mu.Unlock()
	}
	return got
}

// validate checks a response against the operation of in: its status must
// be listed, its required headers present and valid, its content type
// listed and its body valid against that schema.
func (d *apiDoc) validate(in *openapi3filter.RequestValidationInput, r response) error {
	return openapi3filter.ValidateResponse(d.t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 r.status,
		Header:                 r.header,
		Body:                   io.NopCloser(bytes.NewReader(r.body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

// unlisted returns a route for a request the document lists no operation
// for, whose only answer is the component response named (with its
// status): what the document says every such request gets.
func (d *apiDoc) unlisted(req *http.Request, component string, status int) *routers.Route {
	op := openapi3.NewOperation()
	op.Responses = openapi3.NewResponses(openapi3.WithStatus(status, d.doc.Components.Responses[component]))
	return &routers.Route{Spec: d.doc, Path: req.URL.Path, Method: req.Method, Operation: op}
}

// checkCoverage fails the test for every documented operation that no
// request exercised, and logs the documented statuses never seen (the ones
// only a broken database or a panic can produce, for instance).
func (d *apiDoc) checkCoverage() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	var ops, unseen []string
	for path, item := range d.doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			ops = append(ops, key)
			if len(d.seen[key]) == 0 {
				d.t.Errorf("%s: documented operation %s was never exercised", d.name, key)
				continue
			}
			for code := range op.Responses.Map() {
				var status int
				if _, err := fmt.Sscanf(code, "%d", &status); err == nil && !d.seen[key][status] {
					unseen = append(unseen, key+" "+code)
				}
			}
		}
	}
	slices.Sort(unseen)
	d.t.Logf("%s: %d documented operations exercised; documented answers not produced: %s",
		d.name, len(ops), strings.Join(unseen, ", "))
}

// bearerPresent is the document's security check as far as a document can
// tell: the request carries a bearer token. Whether it is the right one is
// the service's to say (401, which the document lists).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if s := in.SecurityScheme; s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %s %s is not a bearer scheme", s.Type, s.Scheme)
	}
	scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errors.New("no bearer token")
	}
	return nil
}
