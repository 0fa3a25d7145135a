// Package productclient calls the product service: one reserve request per
// attempt, never resent; the resolve of an attempt, which is idempotent and
// therefore retried with backoff; the public catalog read, also retried; and
// the reconciliation reads of the attempt log and the ledger, retried like
// the catalog. The reserve and resolve calls go through one circuit breaker
// per Client, so a product service that is down is not piled on and callers
// can fail fast; the reads do not, so an ops check never trips it. The ops
// calls on the dead-letter topic (its count and its replay) are sent once
// each with the admin token, outside the breaker too.
package productclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/middleware"
)

// ErrUnknownOutcome means a reserve or resolve call got no definite answer
// (timeout, transport error, 5xx or an unexpected response): the attempt may
// or may not have been applied and must be resolved, never simply sent again.
var ErrUnknownOutcome = errors.New("reservation outcome unknown")

// ErrUnavailable means the product service could not be used: the catalog
// could not be had, or the circuit breaker refused a call (ErrBreakerOpen).
var ErrUnavailable = errors.New("product service unavailable")

// ErrBreakerOpen means the circuit breaker refused the call because the
// product service recently looked down: nothing was sent. It wraps
// ErrUnavailable. Client.Available tells when it is worth trying again.
var ErrBreakerOpen = fmt.Errorf("circuit breaker open: %w", ErrUnavailable)

// ErrRejectedRequest means the product service answered a resolve with a 4xx
// (attempt_mismatch, validation_failed, unauthorized, ...): the request itself
// is wrong, which is a bug or a misconfiguration on this side, so it is not
// retried. The attempt's outcome is still unknown.
var ErrRejectedRequest = errors.New("product service rejected the request")

// maxResponseBytes bounds what is read of any product-service response but
// the reconciliation reads.
const maxResponseBytes = 1 << 20

// Reconciliation reads: a page of the attempt log holds up to logPageLimit
// attempts of up to 100 lines each, so it may be several MiB, and the ledger
// lists every product. Each try gets at least booksTimeout.
const (
	logPageLimit  = 1000
	logStart      = "1970-01-01T00:00:00Z"
	maxBooksBytes = 64 << 20
	booksTimeout  = 10 * time.Second
)

// Catalog retries: transport errors and 5xx, with backoff between the waits.
const (
	catalogRetries = 2
	catalogWaitMin = 50 * time.Millisecond
	catalogWaitMax = 400 * time.Millisecond
)

// resolveRetryMax is high enough that the caller's context, not the count,
// ends a resolve loop; it only bounds a caller that passes no deadline.
const resolveRetryMax = 100

// Config defaults, used when a field is zero.
const (
	// DefaultBreakerFailures is the default Config.BreakerFailures.
	DefaultBreakerFailures = 5
	// DefaultBreakerOpenFor is the default Config.BreakerOpenFor.
	DefaultBreakerOpenFor = 5 * time.Second
	// DefaultBreakerProbes is the default Config.BreakerProbes.
	DefaultBreakerProbes = 1
	// DefaultResolveWaitMin is the default Config.ResolveWaitMin.
	DefaultResolveWaitMin = 50 * time.Millisecond
	// DefaultResolveWaitMax is the default Config.ResolveWaitMax (or
	// ResolveWaitMin, when that is set higher).
	DefaultResolveWaitMax = time.Second
)

// breakerName names the circuit breaker in logs.
const breakerName = "productservice"

// Outcomes of one try as the circuit breaker sees them. Only errServiceDown
// counts as a failure; errCallerGone is left out of the counts because a try
// cut short by the caller says nothing about the product service.
var (
	errServiceDown = errors.New("product service looks down")
	errCallerGone  = errors.New("caller context ended")
)

// Config configures a Client. Zero breaker and resolve fields take the
// Default* values.
type Config struct {
	// BaseURL is the product service's base URL (PRODUCT_URL).
	BaseURL string
	// ServiceToken is presented as a bearer token on /reservations.
	ServiceToken string
	// AdminToken is presented on the product service's /admin endpoints
	// (the dead-letter count and replay); empty leaves them unusable.
	AdminToken string
	// Timeout is the deadline of one call, or of one try of a retried
	// call (PRODUCT_TIMEOUT); a shorter deadline on the caller's context
	// wins.
	Timeout time.Duration
	// Logger receives the catalog retries and the circuit breaker's state
	// changes; nil discards them.
	Logger *slog.Logger
	// BreakerFailures is how many consecutive failures (transport error,
	// timeout, 5xx) of /reservations* calls open the circuit breaker.
	BreakerFailures int
	// BreakerOpenFor is how long the breaker stays open, refusing calls,
	// before it half-opens.
	BreakerOpenFor time.Duration
	// BreakerProbes is how many calls a half-open breaker lets through; as
	// many successes close it, one failure opens it again.
	BreakerProbes int
	// ResolveWaitMin is the base of Resolve's exponential backoff.
	ResolveWaitMin time.Duration
	// ResolveWaitMax caps one wait between Resolve tries, a Retry-After
	// header included.
	ResolveWaitMax time.Duration
	// Metrics, if not nil, gets the counts of reserve and resolve calls by
	// outcome and the breaker's state and transitions
	// (stockfence_productclient_*).
	Metrics prometheus.Registerer
}

// withDefaults fills the zero fields and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.BreakerFailures < 0 || cfg.BreakerProbes < 0 || cfg.BreakerOpenFor < 0 || cfg.ResolveWaitMin < 0 || cfg.ResolveWaitMax < 0 {
		return cfg, errors.New("product breaker and resolve settings must not be negative")
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = DefaultBreakerFailures
	}
	if cfg.BreakerOpenFor == 0 {
		cfg.BreakerOpenFor = DefaultBreakerOpenFor
	}
	if cfg.BreakerProbes == 0 {
		cfg.BreakerProbes = DefaultBreakerProbes
	}
	if cfg.ResolveWaitMin == 0 {
		cfg.ResolveWaitMin = DefaultResolveWaitMin
	}
	if cfg.ResolveWaitMax == 0 {
		cfg.ResolveWaitMax = max(DefaultResolveWaitMax, cfg.ResolveWaitMin)
	}
	if cfg.ResolveWaitMin > cfg.ResolveWaitMax {
		return cfg, fmt.Errorf("product resolve wait min %s exceeds max %s", cfg.ResolveWaitMin, cfg.ResolveWaitMax)
	}
	return cfg, nil
}

// Client talks to the product service over a pooled HTTP transport sized for
// hundreds of concurrent orders to one host. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	timeout time.Duration
	waitMin time.Duration
	waitMax time.Duration
	// reservations sends /reservations* requests through the breaker,
	// each bounded by timeout.
	reservations *http.Client
	catalog      *retryablehttp.Client
	// books reads the attempt log and the ledger: retried like catalog,
	// with the service token, not through the breaker.
	books *retryablehttp.Client
	// admin calls the dead-letter endpoints once each, with adminToken
	// and the deadline of each method.
	admin      *http.Client
	adminToken string
	breaker    *gobreaker.CircuitBreaker[*http.Response]
	// openUntil is when the open breaker half-opens; nil while it is
	// closed or half-open. Kept beside the breaker so Available needs
	// no lock.
	openUntil atomic.Pointer[time.Time]
	metrics   *clientMetrics
}

// New returns a client for cfg. BaseURL must be an absolute http(s) URL and
// Timeout positive; the breaker and resolve settings must not be negative.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("product url %q must be an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("product timeout must be positive, got %s", cfg.Timeout)
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	if cfg.Logger != nil {
		logger = cfg.Logger.With("component", "productclient")
	}
	transport := &http.Transport{
		DialContext: (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		// Every POST /orders in flight holds a connection to the product
		// service while it waits for its answer: keep as many as a
		// flash-sale crowd needs, or each request beyond them dials (and
		// then closes) a connection of its own.
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   2048,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	c := &Client{base: base, token: cfg.ServiceToken, timeout: cfg.Timeout, waitMin: cfg.ResolveWaitMin, waitMax: cfg.ResolveWaitMax,
		admin: &http.Client{Transport: transport}, adminToken: cfg.AdminToken}
	c.breaker = gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
		Name:        breakerName,
		MaxRequests: uint32(cfg.BreakerProbes),
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= uint32(cfg.BreakerFailures)
		},
		// Only unavailability counts: a 409 or any other answer proves
		// the product service is up.
		IsSuccessful: func(err error) bool { return !errors.Is(err, errServiceDown) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errCallerGone) },
		// Called with the breaker's lock held: no calls back into it.
		OnStateChange: func(name string, from, to gobreaker.State) {
			c.metrics.transitions.WithLabelValues(to.String()).Inc()
			if to == gobreaker.StateOpen {
				until := time.Now().Add(cfg.BreakerOpenFor)
				c.openUntil.Store(&until)
				logger.Warn("circuit breaker opened", "breaker", name, "from", from.String(), "to", to.String(), "openFor", cfg.BreakerOpenFor)
				return
			}
			c.openUntil.Store(nil)
			logger.Info("circuit breaker state changed", "breaker", name, "from", from.String(), "to", to.String())
		},
	})
	c.metrics = newClientMetrics(cfg.Metrics, c.breaker)
	c.reservations = &http.Client{
		// breakerTransport has no CloseIdleConnections, so retryablehttp
		// giving up on one resolve does not empty the shared pool.
		Transport: &breakerTransport{next: transport, breaker: c.breaker, timeout: cfg.Timeout},
		// A redirect would send the reserve request again; take the
		// response as it is (an unexpected status: unknown outcome).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.catalog = &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: transport, Timeout: cfg.Timeout},
		RetryWaitMin: catalogWaitMin,
		RetryWaitMax: catalogWaitMax,
		RetryMax:     catalogRetries,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      cappedBackoff,
		// Hand back the last response instead of a generic error, so
		// the status it ended with can be reported.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	c.books = &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: transport, Timeout: max(cfg.Timeout, booksTimeout)},
		RetryWaitMin: catalogWaitMin,
		RetryWaitMax: catalogWaitMax,
		RetryMax:     catalogRetries,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      cappedBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	if cfg.Logger != nil {
		c.catalog.Logger = logger
		c.books.Logger = logger
	}
	return c, nil
}

// Available reports whether a call to /reservations* would be let through
// now. While the circuit breaker is open it returns ok false and how long
// until it half-opens, never less than a second (a Retry-After value; round it
// up to whole seconds for the header). Closed or half-open, it returns ok
// true. It does no I/O and takes no lock, so it can guard every order.
func (c *Client) Available() (retryAfter time.Duration, ok bool) {
	until := c.openUntil.Load()
	if until == nil {
		return 0, true
	}
	left := time.Until(*until)
	if left <= 0 {
		// Due to half-open: the breaker switches on its next call.
		return 0, true
	}
	return max(left, time.Second), false
}

// BreakerState returns the circuit breaker's state: "closed", "half-open" or
// "open".
func (c *Client) BreakerState() string {
	return c.breaker.State().String()
}

// Reserve sends one reservation request for req.AttemptID and returns the
// product service's definite answer: APPLIED (201, or 200 for a replay), or
// REJECTED, ABORTED or COMPENSATED (409). Anything else - a timeout, a
// transport error, a 5xx, another status, or a body that does not answer for
// this attempt - returns an error wrapping ErrUnknownOutcome. The request is
// never resent by Reserve: an unknown outcome is resolved, not retried.
// When the circuit breaker refuses the call, nothing is sent (so the attempt
// is certainly not applied) and the error wraps ErrBreakerOpen, not
// ErrUnknownOutcome. The call is bounded by Timeout.
func (c *Client) Reserve(ctx context.Context, req contract.ReserveRequest) (out contract.Reservation, err error) {
	defer func() { c.metrics.reserves.WithLabelValues(outcome(out, err)).Inc() }()
	unknown := func(err error) (contract.Reservation, error) {
		return contract.Reservation{}, fmt.Errorf("reserve attempt %s: %w: %w", req.AttemptID, ErrUnknownOutcome, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return contract.Reservation{}, fmt.Errorf("encode reservation %s: %w", req.AttemptID, err)
	}
	// No deadline here: breakerTransport applies Timeout, and must see
	// the caller's own context to tell a timeout from a caller gone.
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/reservations", bytes.NewReader(body))
	if err != nil {
		return contract.Reservation{}, fmt.Errorf("build reservation request: %w", err)
	}
	c.setHeaders(ctx, hreq)

	resp, err := c.reservations.Do(hreq)
	if errors.Is(err, ErrBreakerOpen) {
		return contract.Reservation{}, fmt.Errorf("reserve attempt %s: %w", req.AttemptID, err)
	}
	if err != nil {
		return unknown(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return unknown(fmt.Errorf("read %d response: %w", resp.StatusCode, err))
	}

	want, ok := reserveAnswers(resp.StatusCode)
	if !ok {
		return unknown(fmt.Errorf("status %d: %s", resp.StatusCode, snippet(raw)))
	}
	res, err := decodeReservation(resp.StatusCode, raw, req.AttemptID, want)
	if err != nil {
		return unknown(err)
	}
	return res, nil
}

// reserveAnswers returns the statuses a reserve answer with HTTP status code
// may carry as a definite answer: APPLIED for 201 and 200 (a replay),
// REJECTED, ABORTED or COMPENSATED for 409. Any other code is no definite
// answer (ok false).
func reserveAnswers(code int) (want []contract.AttemptStatus, ok bool) {
	switch code {
	case http.StatusCreated, http.StatusOK:
		return []contract.AttemptStatus{contract.StatusApplied}, true
	case http.StatusConflict:
		return []contract.AttemptStatus{contract.StatusRejected, contract.StatusAborted, contract.StatusCompensated}, true
	}
	return nil, false
}

// Resolve asks the product service for the definite outcome of attemptID
// (POST /reservations/{attemptId}/resolve): APPLIED with the charged prices,
// REJECTED, ABORTED or COMPENSATED. An attempt the product service never saw is
// fenced (recorded ABORTED), so once Resolve answers, a late reserve of that
// attempt can no longer apply. Resolve is idempotent, so transport errors,
// timeouts, 5xx and 200s that do not answer for this attempt are retried with
// exponential backoff and jitter, each try bounded by Timeout and passing
// through the circuit breaker, until ctx ends: pass a deadline (the remaining
// sync budget, or the recovery worker's). The error wraps ErrUnknownOutcome
// when no definite answer came in time; ErrBreakerOpen (and ErrUnavailable)
// when the breaker refused a try, at the start or after the tries of a dead
// service opened it; ErrRejectedRequest on a 4xx, which is not retried. With
// any error the attempt stays unresolved.
func (c *Client) Resolve(ctx context.Context, attemptID, orderID string) (out contract.Reservation, err error) {
	defer func() { c.metrics.resolves.WithLabelValues(outcome(out, err)).Inc() }()
	body, err := json.Marshal(contract.ResolveRequest{OrderID: orderID})
	if err != nil {
		return contract.Reservation{}, fmt.Errorf("encode resolve %s: %w", attemptID, err)
	}
	endpoint := c.base.String() + "/reservations/" + url.PathEscape(attemptID) + "/resolve"
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, endpoint, body)
	if err != nil {
		return contract.Reservation{}, fmt.Errorf("build resolve request: %w", err)
	}
	c.setHeaders(ctx, req.Request)

	want := []contract.AttemptStatus{contract.StatusApplied, contract.StatusRejected, contract.StatusAborted, contract.StatusCompensated}
	var res contract.Reservation
	// A 2xx that does not answer for this attempt is a failed try: the
	// handler's error makes resolveRetryPolicy try again.
	req.SetResponseHandler(func(resp *http.Response) error {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		if err != nil {
			return fmt.Errorf("read %d response: %w", resp.StatusCode, err)
		}
		res, err = decodeReservation(resp.StatusCode, raw, attemptID, want)
		return err
	})
	tries := 0
	rc := &retryablehttp.Client{
		HTTPClient:     c.reservations,
		RetryWaitMin:   c.waitMin,
		RetryWaitMax:   c.waitMax,
		RetryMax:       resolveRetryMax,
		CheckRetry:     resolveRetryPolicy,
		Backoff:        jitterBackoff,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(retryablehttp.Logger, *http.Request, int) { tries++ },
	}
	resp, err := rc.Do(req)
	if errors.Is(err, ErrBreakerOpen) {
		return contract.Reservation{}, fmt.Errorf("resolve attempt %s after %d tries: %w", attemptID, tries-1, err)
	}
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return contract.Reservation{}, fmt.Errorf("resolve attempt %s: %w after %d tries: %w", attemptID, ErrUnknownOutcome, tries, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// The response handler accepted it.
		return res, nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode >= 400 && resp.StatusCode <= 499 {
		return contract.Reservation{}, fmt.Errorf("resolve attempt %s: %w: status %d: %s", attemptID, ErrRejectedRequest, resp.StatusCode, snippet(raw))
	}
	return contract.Reservation{}, fmt.Errorf("resolve attempt %s: %w after %d tries: status %d: %s", attemptID, ErrUnknownOutcome, tries, resp.StatusCode, snippet(raw))
}

// resolveRetryPolicy retries transport errors, timeouts, 5xx and failed
// response handlers until the context ends; a refusal of the breaker and
// every other status are final.
func resolveRetryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if errors.Is(err, ErrBreakerOpen) {
		return false, err
	}
	if err != nil {
		// Retries all but the hopeless: a bad certificate, scheme or
		// header, or too many redirects.
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	return resp.StatusCode >= 500, nil
}

// jitterBackoff is Resolve's wait before retry n (from 0): exponential from lo,
// doubling, capped at hi, with equal jitter - a random wait between d/2 and d -
// so that the waits grow while many orders retrying together spread out. A
// Retry-After header on the response is honoured, capped at hi.
func jitterBackoff(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, hi)
		}
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// breakerTransport sends each request through the circuit breaker, bounded by
// the per-call timeout. A refused request is not sent: RoundTrip returns an
// error wrapping ErrBreakerOpen. Otherwise it answers like the transport it
// wraps; the timeout also covers reading the body, until it is closed.
type breakerTransport struct {
	next    http.RoundTripper
	breaker *gobreaker.CircuitBreaker[*http.Response]
	timeout time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t *breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	caller := req.Context()
	ctx, cancel := context.WithTimeout(caller, t.timeout)
	var sendErr error
	resp, err := t.breaker.Execute(func() (*http.Response, error) {
		var resp *http.Response
		resp, sendErr = t.next.RoundTrip(req.WithContext(ctx))
		switch {
		case sendErr != nil && caller.Err() != nil:
			return nil, errCallerGone
		case sendErr != nil:
			return nil, errServiceDown
		case resp.StatusCode >= 500:
			return resp, errServiceDown
		}
		return resp, nil
	})
	if resp != nil {
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	cancel()
	if sendErr != nil {
		return nil, sendErr
	}
	// Refused: a RoundTripper must close the body even when it sends nothing.
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return nil, fmt.Errorf("%w: %w", ErrBreakerOpen, err)
}

// cancelOnClose releases a try's deadline once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// decodeReservation parses a reservation body and checks that it answers for
// attemptID with one of the statuses want.
func decodeReservation(status int, raw []byte, attemptID string, want []contract.AttemptStatus) (contract.Reservation, error) {
	var res contract.Reservation
	if err := json.Unmarshal(raw, &res); err != nil {
		return contract.Reservation{}, fmt.Errorf("decode %d response: %w", status, err)
	}
	if err := checkReservation(status, res, attemptID, want); err != nil {
		return contract.Reservation{}, err
	}
	return res, nil
}

// checkReservation checks that res, the body of an answer with HTTP status
// code status, answers for attemptID with one of the statuses want.
func checkReservation(status int, res contract.Reservation, attemptID string, want []contract.AttemptStatus) error {
	if res.AttemptID != attemptID {
		return fmt.Errorf("%d response names attempt %q", status, res.AttemptID)
	}
	if !contains(want, res.Status) {
		return fmt.Errorf("%d response has status %q", status, res.Status)
	}
	return nil
}

// setHeaders sets what every /reservations* request carries.
func (c *Client) setHeaders(ctx context.Context, req *http.Request) {
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	setRequestID(ctx, req)
}

// Catalog returns the product list (GET /products). Transport errors and 5xx
// are retried a bounded number of times with backoff, within Timeout per try
// and the context's deadline overall; when no list can be had the error wraps
// ErrUnavailable.
func (c *Client) Catalog(ctx context.Context) (contract.ProductList, error) {
	ctx, cancel := context.WithTimeout(ctx, (catalogRetries+1)*c.timeout+catalogRetries*catalogWaitMax)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/products", nil)
	if err != nil {
		return contract.ProductList{}, fmt.Errorf("build catalog request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	setRequestID(ctx, req.Request)
	resp, err := c.catalog.Do(req)
	if err != nil {
		return contract.ProductList{}, fmt.Errorf("get catalog: %w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return contract.ProductList{}, fmt.Errorf("get catalog: %w: read body: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return contract.ProductList{}, fmt.Errorf("get catalog: %w: status %d: %s", ErrUnavailable, resp.StatusCode, snippet(raw))
	}
	var list contract.ProductList
	if err := json.Unmarshal(raw, &list); err != nil {
		return contract.ProductList{}, fmt.Errorf("get catalog: %w: decode: %w", ErrUnavailable, err)
	}
	if list.Products == nil {
		list.Products = []contract.Product{}
	}
	return list, nil
}

// Reservations returns one page of the product service's attempt log
// (GET /reservations), each attempt with its ledger figures: with cursor ""
// the first page of the whole log, otherwise the page after cursor, which is
// the Next of the page before. Pages hold up to 1000 attempts, oldest change
// first; an empty Next ends the log. The read is idempotent: transport errors
// and 5xx are retried a bounded number of times with backoff, outside the
// circuit breaker. When no page can be had the error wraps ErrUnavailable, or
// ErrRejectedRequest on a 4xx (a bad cursor or token).
func (c *Client) Reservations(ctx context.Context, cursor string) (contract.ReservationPage, error) {
	query := "updatedSince=" + logStart + "&limit=" + strconv.Itoa(logPageLimit)
	if cursor != "" {
		query += "&cursor=" + url.QueryEscape(cursor)
	}
	var page contract.ReservationPage
	if err := c.getBooks(ctx, "/reservations?"+query, &page); err != nil {
		return contract.ReservationPage{}, fmt.Errorf("read attempt log: %w", err)
	}
	if page.Reservations == nil {
		page.Reservations = []contract.Reservation{}
	}
	return page, nil
}

// Ledger returns the product service's own books (GET /ledger): every
// product's stock beside the sum of its ledger, and the movements no attempt
// explains. It is retried and fails like Reservations.
func (c *Client) Ledger(ctx context.Context) (contract.Ledger, error) {
	var books contract.Ledger
	if err := c.getBooks(ctx, "/ledger", &books); err != nil {
		return contract.Ledger{}, fmt.Errorf("read ledger: %w", err)
	}
	if books.Products == nil {
		books.Products = []contract.ProductBalance{}
	}
	if books.Unattributed == nil {
		books.Unattributed = []contract.UnattributedMovement{}
	}
	return books, nil
}

// getBooks GETs pathQuery with the service token through the books client
// and decodes a 200 body into v.
func (c *Client) getBooks(ctx context.Context, pathQuery string, v any) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+pathQuery, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	setRequestID(ctx, req.Request)
	resp, err := c.books.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBooksBytes+1))
	if err != nil {
		return fmt.Errorf("%w: read body: %w", ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode <= 499:
		return fmt.Errorf("%w: status %d: %s", ErrRejectedRequest, resp.StatusCode, snippet(raw))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: status %d: %s", ErrUnavailable, resp.StatusCode, snippet(raw))
	case len(raw) > maxBooksBytes:
		return fmt.Errorf("%w: response larger than %d bytes", ErrUnavailable, maxBooksBytes)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: decode: %w", ErrUnavailable, err)
	}
	return nil
}

// cappedBackoff is retryablehttp's exponential backoff, which honours a
// Retry-After header, capped so one wait never exceeds max.
func cappedBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
}

// setRequestID propagates the incoming request's id, so one id follows an
// order across both services' logs.
func setRequestID(ctx context.Context, req *http.Request) {
	if id := chimw.GetReqID(ctx); id != "" {
		req.Header.Set(middleware.RequestIDHeader, id)
	}
}

func contains(statuses []contract.AttemptStatus, s contract.AttemptStatus) bool {
	for _, want := range statuses {
		if s == want {
			return true
		}
	}
	return false
}

// snippet returns the start of a response body for an error message.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
	}
	return strings.TrimSpace(string(b))
}
