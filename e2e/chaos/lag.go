package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The services' consumer groups: the product side's reader of
// stock-compensations and the order side's reader of their results.
var consumerGroups = []string{"productservice", "orderservice"}

// consumerLag asks the broker, with a Kafka client of its own (franz-go, not
// the services' librdkafka), how many messages each of the services'
// consumer groups has not committed yet. It returns the total and, when it
// is not zero, a description per group and partition for a failure report.
func (env *Env) consumerLag(ctx context.Context) (int64, string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Broker.Addr()))
	if err != nil {
		return 0, "", err
	}
	defer cl.Close()
	lags, err := kadm.NewClient(cl).Lag(ctx, consumerGroups...)
	if err != nil {
		return 0, "", fmt.Errorf("consumer lag: %w", err)
	}
	var (
		total int64
		parts []string
	)
	for _, group := range consumerGroups {
		l, ok := lags[group]
		if !ok {
			return 0, "", fmt.Errorf("consumer lag: no answer for group %s", group)
		}
		if err := l.Error(); err != nil {
			return 0, "", fmt.Errorf("consumer lag of %s: %w", group, err)
		}
		for _, m := range l.Lag.Sorted() {
			if m.Lag > 0 {
				total += m.Lag
				parts = append(parts, fmt.Sprintf("%s %s/%d lag %d (committed %d, end %d, member %q)",
					group, m.Topic, m.Partition, m.Lag, m.Commit.At, m.End.Offset, memberOf(m)))
			}
		}
		parts = append(parts, fmt.Sprintf("%s: state %s, %d members", group, l.State, len(l.Members)))
	}
	sort.Strings(parts)
	return total, strings.Join(parts, "; "), nil
}

func memberOf(m kadm.GroupMemberLag) string {
	if m.Member == nil {
		return ""
	}
	return m.Member.ClientID + "@" + m.Member.ClientHost
}
