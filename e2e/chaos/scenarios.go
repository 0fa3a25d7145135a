package chaos

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/stockfence/stockfence/e2e/faults"
	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
)

// Scenario is one kind of fault. Inject injects it for about d while the
// load runs, drawing every choice from r, undoes it, and returns how many
// faults it injected.
type Scenario struct {
	Name   string
	Inject func(ctx context.Context, env *Env, r *rand.Rand, d time.Duration) (int, error)
	// Exclusive scenarios disturb the whole MariaDB server, which other
	// test packages share during `make test`: only the full profile runs
	// them, and the soak does not mix them in.
	Exclusive bool
}

// Scenarios is the catalogue, in the order the suite runs it; "soak" mixes
// the others.
func Scenarios() []Scenario {
	base := []Scenario{
		{Name: "latency-up", Inject: steady(func(env *Env, r *rand.Rand) error {
			return each(env.Links, func(p *faults.Proxy) error {
				return p.Latency(faults.Upstream, 600*time.Millisecond, 200*time.Millisecond)
			})
		})},
		{Name: "latency-down", Inject: steady(func(env *Env, r *rand.Rand) error {
			return each(env.Links, func(p *faults.Proxy) error {
				return p.Latency(faults.Downstream, 600*time.Millisecond, 200*time.Millisecond)
			})
		})},
		{Name: "lost-requests", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			p := env.Links[r.IntN(len(env.Links))]
			return p.Clear, p.ResetPeer(faults.Upstream, 0)
		})},
		{Name: "lost-responses", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			p := env.Links[r.IntN(len(env.Links))]
			return p.Clear, p.ResetPeer(faults.Downstream, 0)
		})},
		{Name: "502-after-commit", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			gw := env.Gateways[r.IntN(len(env.Gateways))]
			gw.Fail(faults.PostPath("/reservations", "/reservations/batch"), 1+r.IntN(5))
			return func() error { gw.Heal(); return nil }, nil
		})},
		{Name: "kill-product", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			p := env.Products[r.IntN(len(env.Products))]
			return func() error { return p.Restart(context.Background()) }, p.Kill()
		})},
		{Name: "kill-order", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			p := env.Orders[r.IntN(len(env.Orders))]
			return func() error { return p.Restart(context.Background()) }, p.Kill()
		})},
		{Name: "db-link-reset", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			p := []*faults.Proxy{env.OrdersDB, env.ProductsDB}[r.IntN(2)]
			dir := []faults.Direction{faults.Upstream, faults.Downstream}[r.IntN(2)]
			return p.Clear, p.ResetPeer(dir, time.Duration(r.IntN(50))*time.Millisecond)
		})},
		{Name: "db-down", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			// What the services see of a MariaDB restart: every connection
			// cut, new ones refused, then back.
			if err := env.OrdersDB.Down(); err != nil {
				return nil, err
			}
			return func() error { return each([]*faults.Proxy{env.OrdersDB, env.ProductsDB}, (*faults.Proxy).Up) }, env.ProductsDB.Down()
		})},
		{Name: "kafka-link", Inject: windows(func(env *Env, r *rand.Rand) (func() error, error) {
			// The link to the broker drops, stalls or slows, for everyone.
			dir := []faults.Direction{faults.Upstream, faults.Downstream}[r.IntN(2)]
			var err error
			switch r.IntN(3) {
			case 0:
				err = env.Kafka.ResetPeer(dir, time.Duration(r.IntN(50))*time.Millisecond)
			case 1:
				err = env.Kafka.Timeout(dir, 0)
			default:
				err = env.Kafka.Latency(dir, 300*time.Millisecond, 200*time.Millisecond)
			}
			return env.Kafka.Clear, err
		})},
		{Name: "kafka-down", Inject: steady(func(env *Env, r *rand.Rand) error { return env.Broker.Stop() })},
		{Name: "duplicates", Inject: duplicates},
		{Name: "slow-consumer", Inject: steady(func(env *Env, r *rand.Rand) error {
			return env.ProductsDB.Latency(faults.Downstream, 80*time.Millisecond, 40*time.Millisecond)
		})},
	}
	soak := Scenario{Name: "soak", Inject: func(ctx context.Context, env *Env, r *rand.Rand, d time.Duration) (int, error) {
		total := 0
		for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; {
			sc := base[r.IntN(len(base))]
			n, err := sc.Inject(ctx, env, r, time.Duration(2+r.IntN(3))*time.Second)
			total += n
			if err != nil {
				return total, fmt.Errorf("%s: %w", sc.Name, err)
			}
			if err := env.Heal(ctx); err != nil {
				return total, err
			}
		}
		return total, nil
	}}
	restart := Scenario{Name: "db-restart", Exclusive: true, Inject: func(ctx context.Context, env *Env, r *rand.Rand, d time.Duration) (int, error) {
		// The server itself goes down (SHUTDOWN) and comes back as the
		// machine's boot starts it: every connection lost, nothing
		// answering for d, the buffer pool cold afterwards.
		if err := stack.StopMariaDB(ctx, env.mariaDB); err != nil {
			return 0, err
		}
		sleep(ctx, d)
		if err := stack.EnsureMariaDB(ctx, env.mariaDB); err != nil {
			return 1, err
		}
		_, err := stack.EnsureMaxConnections(ctx, env.mariaDB, 500)
		return 1, err
	}}
	return append(base, restart, soak)
}

func each[T any](xs []T, fn func(T) error) error {
	for _, x := range xs {
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// steady holds one fault for the whole duration; Heal undoes it.
func steady(inject func(env *Env, r *rand.Rand) error) func(context.Context, *Env, *rand.Rand, time.Duration) (int, error) {
	return func(ctx context.Context, env *Env, r *rand.Rand, d time.Duration) (int, error) {
		if err := inject(env, r); err != nil {
			return 0, err
		}
		sleep(ctx, d)
		return 1, env.Heal(ctx)
	}
}

// windows injects short faults at random moments: each lasts 0.2 to 1.5 s
// and is followed by 0.2 to 1 s of calm.
func windows(inject func(env *Env, r *rand.Rand) (undo func() error, err error)) func(context.Context, *Env, *rand.Rand, time.Duration) (int, error) {
	return func(ctx context.Context, env *Env, r *rand.Rand, d time.Duration) (int, error) {
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; {
			sleep(ctx, time.Duration(200+r.IntN(800))*time.Millisecond)
			undo, err := inject(env, r)
			if err != nil {
				return n, err
			}
			n++
			sleep(ctx, time.Duration(200+r.IntN(1300))*time.Millisecond)
			if undo != nil {
				if err := undo(); err != nil {
					return n, err
				}
			}
		}
		return n, env.Heal(ctx)
	}
}

// duplicates publishes every compensation the outbox has sent so far once
// more, every second: what a relay that lost its acknowledgements, or a
// broker that redelivers, would do.
func duplicates(ctx context.Context, env *Env, r *rand.Rand, d time.Duration) (int, error) {
	pub, err := kafkaclient.NewProducer(env.Stack.KafkaBrokers, "chaos-duplicates", 10*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	defer pub.Close(5 * time.Second)
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; sleep(ctx, time.Second) {
		rows, err := env.OrdersData.QueryContext(ctx, `SELECT msg_key, payload FROM outbox WHERE sent_at IS NOT NULL`)
		if err != nil {
			return n, err
		}
		var msgs []kafkaclient.Message
		for rows.Next() {
			var key, payload string
			if err := rows.Scan(&key, &payload); err != nil {
				rows.Close()
				return n, err
			}
			msgs = append(msgs, kafkaclient.Message{Topic: contract.TopicCompensations, Key: []byte(key), Value: []byte(payload)})
		}
		rows.Close()
		for _, err := range pub.Publish(ctx, msgs...) {
			if err == nil {
				n++
			}
		}
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
