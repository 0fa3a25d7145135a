package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"time"
)

// settleNudged is how long the settle phase waits after asking for
// rechecks.
const settleNudged = time.Minute

// settling is what became of the orders still unsettled when a load ended.
type settling struct {
	// atEnd were unsettled when the load ended; alone of them settled by
	// themselves (the recovery worker) within aloneFor; nudged were then
	// rechecked through the ops API; left were still unsettled at the end.
	atEnd, alone, nudged, left int64
	aloneFor, nudgedFor        time.Duration
	// rechecked is set once the rechecks were asked for.
	rechecked bool
}

// settle waits until every order of the run is settled. An order whose
// outcome was unknown (a product call that timed out, a breaker that was
// open) waits for the recovery worker, whose backoff can reach minutes; so
// after settleAlone the orders still unsettled are rechecked with
// POST /ops/orders/{id}/recheck, as an operator would, and given another
// settleNudged. The checks that follow read the final state; the note says
// how it was reached.
func (s *system) settle(ctx context.Context, label string) (settling, error) {
	n, err := s.unsettled(ctx)
	res := settling{atEnd: n, left: n}
	if err != nil || n == 0 {
		return res, err
	}
	began := time.Now()
	phaseEnd := began.Add(s.r.prof.settleAlone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		if res.left, err = s.unsettled(ctx); err != nil {
			return res, err
		}
		fmt.Fprintf(s.r.progress, "bench: %-34s waiting for %d unsettled orders, %.0fs\n", label, res.left, time.Since(began).Seconds())
		switch {
		case res.left == 0 && !res.rechecked:
			res.alone, res.aloneFor = res.atEnd, time.Since(began)
			return res, nil
		case res.left == 0:
			res.nudgedFor = time.Since(began) - res.aloneFor
			return res, nil
		case time.Now().Before(phaseEnd):
			continue
		case res.rechecked:
			res.nudgedFor = time.Since(began) - res.aloneFor
			return res, nil
		}
		res.alone, res.aloneFor = res.atEnd-res.left, time.Since(began)
		ids, err := s.unsettledIDs(ctx)
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			code, _, _, err := s.send(ctx, http.MethodPost, s.OrderURL+"/ops/orders/"+id+"/recheck", s.AdminToken, nil, "")
			if err != nil && ctx.Err() != nil {
				return res, ctx.Err()
			}
			if err == nil && code == http.StatusAccepted {
				res.nudged++
			}
		}
		// An order that settled between the look-up and its recheck got a
		// 409 and is not counted.
		res.rechecked = true
		phaseEnd = time.Now().Add(settleNudged)
	}
}

// note says how the orders settled, or "" if none had to.
func (st settling) note() string {
	switch {
	case st.atEnd == 0:
		return ""
	case !st.rechecked:
		return fmt.Sprintf("orders unsettled when the load ended: %s; all settled by themselves (recovery worker) within %s",
			thousands(st.atEnd), st.aloneFor.Round(time.Second))
	default:
		return fmt.Sprintf("orders unsettled when the load ended: %s; %s settled by themselves within %s; "+
			"rechecked then with POST /ops/orders/{id}/recheck: %s; still unsettled %s later: %s",
			thousands(st.atEnd), thousands(st.alone), st.aloneFor.Round(time.Second), thousands(st.nudged),
			st.nudgedFor.Round(time.Second), thousands(st.left))
	}
}

const unsettledWhere = " WHERE status NOT IN ('CONFIRMED', 'FAILED', 'CANCELLED')"

// unsettled counts the orders of the run that are not settled.
func (s *system) unsettled(ctx context.Context) (int64, error) {
	var n int64
	q := "SELECT COUNT(*) FROM `" + s.orders + "`.orders" + unsettledWhere
	if err := s.r.admin.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unsettled orders: %w", err)
	}
	return n, nil
}

// unsettledIDs returns the ids of the orders of the run that are not
// settled.
func (s *system) unsettledIDs(ctx context.Context) ([]string, error) {
	var ids []string
	q := "SELECT id FROM `" + s.orders + "`.orders" + unsettledWhere
	err := scanRows(ctx, s.r.admin, q, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list unsettled orders: %w", err)
	}
	return ids, nil
}
