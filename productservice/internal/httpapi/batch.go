package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/httpio"
	"github.com/stockfence/stockfence/shared/problem"
)

// reserveBatch serves POST /reservations/batch: many reservation requests
// in one call, which saves the order service one HTTP round trip (and the
// product service one request's overhead) per reservation. It takes the
// service token, like POST /reservations.
//
// The batch as a whole is refused, and then nothing of it is applied, when
// its body is not a contract.ReserveBatchRequest decoded strictly like every
// body (400 validation_failed for malformed JSON, a wrong type or an unknown
// field, in an element too; 413 body_too_large beyond
// contract.MaxBatchBodyBytes) or when it holds no request or more than
// contract.MaxBatchReservations (400 with a field error on "reservations").
// Such a refusal is counted once as an invalid reservation request.
//
// Otherwise the answer is 200 with one contract.ReserveResult per request,
// in request order, each exactly what POST /reservations would have answered
// that request alone (reserveOne makes both): the status (201 applied, 200
// replay, 409 REJECTED/ABORTED/COMPENSATED, 400 invalid with its field
// errors, 422 attempt_mismatch, 500 internal_error) and the body, the
// reservation or the problem; each is counted and logged as POST
// /reservations counts and logs it. A request whose JSON encoding exceeds
// contract.MaxBodyBytes, which POST /reservations would refuse 413 before
// looking at it, gets that 413 (no such request is valid, so this changes no
// other outcome).
//
// The requests are applied concurrently through Store.Reserve, one goroutine
// per attempt id in the batch (so at most len(batch)), and the answer waits
// for all of them: through the coalescer (PRODUCT_COALESCE=on) they end up in
// one or a few transactions; without it each is its own transaction, as
// before. Requests that name the same attempt run one after the other in
// request order, which is one of the ways two concurrent POST /reservations
// for it can go: the first one decides (applies, rejects, or finds the
// attempt fenced) and the later ones are answered from the log (a replay, or
// 422 if they differ from it).
func (a *api) reserveBatch(w http.ResponseWriter, r *http.Request) {
	var batch contract.ReserveBatchRequest
	p := httpio.DecodeLimit(w, r, &batch, contract.MaxBatchBodyBytes)
	if p == nil {
		p = batchSizeProblem(len(batch.Reservations))
	}
	if p != nil {
		a.metrics.reservations.WithLabelValues(outcomeInvalid, "").Inc()
		problem.Write(w, p)
		return
	}

	reqs := batch.Reservations
	results := make([]contract.ReserveResult, len(reqs))
	var wg sync.WaitGroup
	for _, indexes := range byAttempt(reqs) {
		wg.Go(func() {
			for _, i := range indexes {
				results[i] = a.reserveInBatch(r, reqs[i])
			}
		})
	}
	wg.Wait()
	httpio.JSON(w, http.StatusOK, contract.ReserveBatchResponse{Results: results})
}

// reserveInBatch is reserveOne for one request of a batch. It also answers
// a request too large to be sent alone as POST /reservations answers its
// body, and turns a panic (which middleware.Recover cannot see in this
// goroutine) into the 500 it would have made of it.
func (a *api) reserveInBatch(r *http.Request, req contract.ReserveRequest) (res contract.ReserveResult) {
	defer func() {
		if v := recover(); v != nil {
			res = problemResult(a.failure(r, fmt.Errorf("panic: %v", v)))
		}
	}()
	res = a.reserveOne(r, req)
	if res.Status == http.StatusBadRequest {
		if p := aloneTooLarge(req); p != nil {
			res = problemResult(p)
		}
	}
	return res
}

// aloneTooLarge returns the problem POST /reservations answers req with
// when its JSON encoding exceeds contract.MaxBodyBytes, and nil otherwise.
// The answer is httpio.Decode's own, for that very body.
func aloneTooLarge(req contract.ReserveRequest) *problem.Problem {
	raw, err := json.Marshal(req)
	if err != nil || len(raw) <= contract.MaxBodyBytes {
		return nil
	}
	// httpio.Decode uses the ResponseWriter only to tell a server to close
	// the connection; there is none here.
	alone := &http.Request{Method: http.MethodPost, Body: io.NopCloser(bytes.NewReader(raw))}
	return httpio.Decode(nil, alone, new(contract.ReserveRequest))
}

// byAttempt groups the indexes of reqs by attempt id, each group in request
// order.
func byAttempt(reqs []contract.ReserveRequest) [][]int {
	var groups [][]int
	group := make(map[string]int, len(reqs))
	for i, req := range reqs {
		g, ok := group[req.AttemptID]
		if !ok {
			g = len(groups)
			group[req.AttemptID] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// batchSizeProblem is the 400 for a batch of n requests when n is not 1 to
// contract.MaxBatchReservations.
func batchSizeProblem(n int) *problem.Problem {
	switch {
	case n == 0:
		return httpio.Invalid([]problem.FieldError{{Field: "reservations", Message: "at least one request is required"}})
	case n > contract.MaxBatchReservations:
		return httpio.Invalid([]problem.FieldError{{Field: "reservations",
			Message: fmt.Sprintf("at most %d requests are allowed, got %d", contract.MaxBatchReservations, n)}})
	}
	return nil
}
