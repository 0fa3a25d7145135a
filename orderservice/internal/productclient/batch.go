package productclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/stockfence/stockfence/shared/contract"
)

// ErrBatchUnsupported means the product service has no
// POST /reservations/batch (it answered 404 or 405): nothing was applied, so
// the requests may be sent one at a time instead.
var ErrBatchUnsupported = errors.New("product service does not take reservation batches")

// maxBatchResponseBytes bounds what is read of a batch's answer: up to
// contract.MaxBatchReservations reservations of up to contract.MaxLines
// lines each.
const maxBatchResponseBytes = 32 << 20

// Answer is the answer to one request of a batch: what Reserve would have
// returned for it.
type Answer struct {
	Res contract.Reservation
	Err error
}

// ReserveBatch sends reqs in POST /reservations/batch calls of up to
// contract.MaxBatchReservations requests (their bodies then always fit
// contract.MaxBatchBodyBytes) and returns each request's answer, in order,
// exactly as Reserve would have answered it: a definite reservation, or an
// error wrapping ErrUnknownOutcome (timeout, transport error, 5xx, a result
// that does not answer for its attempt), ErrBreakerOpen (nothing sent), or
// ErrBatchUnsupported (nothing applied). A lost answer makes every request
// of its call unknown: each is then resolved, never sent again. Each call is
// bounded by Timeout.
func (c *Client) ReserveBatch(ctx context.Context, reqs []contract.ReserveRequest) []Answer {
	answers := make([]Answer, len(reqs))
	for start := 0; start < len(reqs); start += contract.MaxBatchReservations {
		end := min(start+contract.MaxBatchReservations, len(reqs))
		c.reserveChunk(ctx, reqs[start:end], answers[start:end])
	}
	for i := range answers {
		c.metrics.reserves.WithLabelValues(outcome(answers[i].Res, answers[i].Err)).Inc()
	}
	return answers
}

// reserveChunk sends one batch call and fills in answers.
func (c *Client) reserveChunk(ctx context.Context, reqs []contract.ReserveRequest, answers []Answer) {
	fail := func(err error) {
		for i := range answers {
			answers[i].Err = fmt.Errorf("reserve attempt %s: %w", reqs[i].AttemptID, err)
		}
	}
	body, err := json.Marshal(contract.ReserveBatchRequest{Reservations: reqs})
	if err != nil {
		fail(fmt.Errorf("encode batch: %w", err))
		return
	}
	// As in Reserve: breakerTransport applies Timeout.
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/reservations/batch", bytes.NewReader(body))
	if err != nil {
		fail(fmt.Errorf("build batch request: %w", err))
		return
	}
	c.setHeaders(ctx, hreq)
	resp, err := c.reservations.Do(hreq)
	if errors.Is(err, ErrBreakerOpen) {
		fail(err)
		return
	}
	if err != nil {
		fail(fmt.Errorf("%w: %w", ErrUnknownOutcome, err))
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBatchResponseBytes))
	switch {
	case err != nil:
		fail(fmt.Errorf("%w: read %d response: %w", ErrUnknownOutcome, resp.StatusCode, err))
		return
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		fail(fmt.Errorf("%w: status %d", ErrBatchUnsupported, resp.StatusCode))
		return
	case resp.StatusCode != http.StatusOK:
		fail(fmt.Errorf("%w: status %d: %s", ErrUnknownOutcome, resp.StatusCode, snippet(raw)))
		return
	}
	var batch contract.ReserveBatchResponse
	if err := json.Unmarshal(raw, &batch); err != nil {
		fail(fmt.Errorf("%w: decode batch response: %w", ErrUnknownOutcome, err))
		return
	}
	if len(batch.Results) != len(reqs) {
		fail(fmt.Errorf("%w: %d results for %d requests", ErrUnknownOutcome, len(batch.Results), len(reqs)))
		return
	}
	for i, r := range batch.Results {
		answers[i] = answerOf(reqs[i].AttemptID, r)
	}
}

// answerOf reads one result of a batch as Reserve reads a whole response.
func answerOf(attemptID string, r contract.ReserveResult) Answer {
	unknown := func(err error) Answer {
		return Answer{Err: fmt.Errorf("reserve attempt %s: %w: %w", attemptID, ErrUnknownOutcome, err)}
	}
	want, ok := reserveAnswers(r.Status)
	switch {
	case !ok && r.Problem != nil:
		return unknown(fmt.Errorf("status %d: %s: %s", r.Status, r.Problem.Code, r.Problem.Detail))
	case !ok:
		return unknown(fmt.Errorf("status %d", r.Status))
	case r.Reservation == nil:
		return unknown(fmt.Errorf("%d result without a reservation", r.Status))
	}
	if err := checkReservation(r.Status, *r.Reservation, attemptID, want); err != nil {
		return unknown(err)
	}
	return Answer{Res: *r.Reservation}
}
