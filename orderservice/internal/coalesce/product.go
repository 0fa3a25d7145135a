package coalesce

import (
	"context"
	"errors"
	"sync"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/groupcommit"
)

// Product is the product client with concurrent reserve calls sent together
// in one POST /reservations/batch; everything else is the client's. Each
// request keeps its own attempt and its own answer, and a lost batch answer
// leaves each of its requests unknown (to be resolved, never sent again),
// as a lost single answer does.
type Product struct {
	*productclient.Client
	reserve *groupcommit.Batcher[contract.ReserveRequest, productclient.Answer]
}

// NewProduct starts the reserve batcher over client. Close stops it.
func NewProduct(client *productclient.Client, cfg Config) *Product {
	return &Product{Client: client, reserve: groupcommit.New(groupcommit.Config[contract.ReserveRequest, productclient.Answer]{
		Batch: func(ctx context.Context, reqs []contract.ReserveRequest) ([]productclient.Answer, error) {
			answers := client.ReserveBatch(ctx, reqs)
			// A product service without batches applied nothing of
			// them: send each on its own.
			var wg sync.WaitGroup
			for i := range answers {
				if errors.Is(answers[i].Err, productclient.ErrBatchUnsupported) {
					wg.Go(func() {
						res, err := client.Reserve(ctx, reqs[i])
						answers[i] = productclient.Answer{Res: res, Err: err}
					})
				}
			}
			wg.Wait()
			return answers, nil
		},
		Lanes:    cfg.Lanes,
		MaxBatch: min(cfg.MaxBatch, contract.MaxBatchReservations),
		Timeout:  batchTimeout,
		Observe:  cfg.observe("reserve"),
	})}
}

// Reserve is productclient.Client.Reserve, sent with concurrent calls in one
// batch.
func (p *Product) Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
	a, err := p.reserve.Do(ctx, req)
	if err != nil {
		return contract.Reservation{}, err
	}
	return a.Res, a.Err
}

// Close lets the batcher finish what is queued and stops it.
func (p *Product) Close() { p.reserve.Close() }
