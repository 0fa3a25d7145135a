// Package metricstest reads what a GET /metrics endpoint serves, for tests
// that check a metric moved after they made something happen.
package metricstest

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Samples is one scrape: its metric families by name, and the text as served.
type Samples struct {
	Families map[string]*dto.MetricFamily
	Text     string
}

// Scrape GETs url, a /metrics endpoint, and parses the Prometheus text it
// answers. Anything but a 200 in that format fails t.
func Scrape(t testing.TB, url string) Samples {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: read: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d: %s", url, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: content type %q, want the text format", url, ct)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("scrape %s: parse: %v", url, err)
	}
	return Samples{Families: families, Text: string(raw)}
}

// Value returns the sum over the samples of family name whose labels include
// every one of labels (nil matches all): a counter's or gauge's value, a
// histogram's sample count. found is false when no sample matches.
func (s Samples) Value(name string, labels map[string]string) (value float64, found bool) {
	f, ok := s.Families[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			value += m.GetCounter().GetValue()
		case m.Gauge != nil:
			value += m.GetGauge().GetValue()
		case m.Histogram != nil:
			value += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			value += m.GetUntyped().GetValue()
		}
	}
	return value, found
}

// LabelValues returns the distinct values label takes in family name, sorted.
func (s Samples) LabelValues(name, label string) []string {
	var out []string
	for _, m := range s.Families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
				out = append(out, l.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

func matches(m *dto.Metric, want map[string]string) bool {
	for name, value := range want {
		ok := false
		for _, l := range m.GetLabel() {
			if l.GetName() == name && l.GetValue() == value {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
