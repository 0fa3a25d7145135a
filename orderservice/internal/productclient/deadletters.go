package productclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ErrKafkaUnavailable means the product service answered a dead-letter call
// 503 kafka_unavailable: it is up, but Kafka did not let it count or replay.
// What a replay did before that is committed, so trying again is safe.
var ErrKafkaUnavailable = errors.New("product service cannot reach Kafka")

// deadLetterCountTimeout bounds DeadLetterCount.
const deadLetterCountTimeout = 10 * time.Second

// deadLetterReplayTimeout bounds ReplayDeadLetters: the product service may
// replay for its budget (20 s by default) before it answers.
const deadLetterReplayTimeout = 30 * time.Second

// codeKafkaUnavailable is the product service's problem code for Kafka
// trouble on /admin/dlq*.
const codeKafkaUnavailable = "kafka_unavailable"

// DeadLetterCount returns how many compensations wait in the product
// service's dead-letter topic and were not replayed yet
// (GET /admin/dlq with the admin token). It is sent once, within 10 s. The
// error wraps ErrKafkaUnavailable when the product service could not ask
// Kafka, ErrUnavailable when it did not answer (transport error, timeout,
// another 5xx) and ErrRejectedRequest on a 4xx (the admin token is not the
// product service's, or it has no dead-letter endpoints).
func (c *Client) DeadLetterCount(ctx context.Context) (int64, error) {
	var out struct {
		Count *int64 `json:"count"`
	}
	if err := c.callAdmin(ctx, http.MethodGet, "/admin/dlq", deadLetterCountTimeout, &out); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	if out.Count == nil {
		return 0, fmt.Errorf("count dead letters: %w: answer has no count", ErrUnavailable)
	}
	return *out.Count, nil
}

// ReplayDeadLetters asks the product service to republish the dead letters
// not replayed yet (POST /admin/dlq/replay with the admin token) and returns
// how many it republished. It is sent once, never retried, within 30 s;
// it fails like DeadLetterCount. A replay cut short
// keeps what it republished, and compensations are idempotent, so the
// caller may simply call again.
func (c *Client) ReplayDeadLetters(ctx context.Context) (int, error) {
	var out struct {
		Replayed *int `json:"replayed"`
	}
	if err := c.callAdmin(ctx, http.MethodPost, "/admin/dlq/replay", deadLetterReplayTimeout, &out); err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	if out.Replayed == nil {
		return 0, fmt.Errorf("replay dead letters: %w: answer has no replayed count", ErrUnavailable)
	}
	return *out.Replayed, nil
}

// callAdmin sends one request with the admin token, bounded by timeout, and
// decodes a 200 body into v.
func (c *Client) callAdmin(ctx context.Context, method, path string, timeout time.Duration, v any) error {
	if c.adminToken == "" {
		return fmt.Errorf("%w: no admin token configured", ErrRejectedRequest)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.adminToken)
	setRequestID(ctx, req)
	resp, err := c.admin.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%w: read %d answer: %w", ErrUnavailable, resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusServiceUnavailable && problemCode(raw) == codeKafkaUnavailable:
		return fmt.Errorf("%w: %s", ErrKafkaUnavailable, snippet(raw))
	case resp.StatusCode >= 400 && resp.StatusCode <= 499:
		return fmt.Errorf("%w: status %d: %s", ErrRejectedRequest, resp.StatusCode, snippet(raw))
	default:
		return fmt.Errorf("%w: status %d: %s", ErrUnavailable, resp.StatusCode, snippet(raw))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: decode: %w", ErrUnavailable, err)
	}
	return nil
}

// problemCode returns the code of a problem+json body, "" for anything else.
func problemCode(raw []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return ""
	}
	return p.Code
}
