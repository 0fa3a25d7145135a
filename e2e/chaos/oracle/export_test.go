package oracle

import "context"

// WithBetweenSnapshots returns a context under which Check calls f after
// reading the products database and before reading the orders database.
func WithBetweenSnapshots(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, betweenSnapshotsKey{}, f)
}
