package productclient

import (
	"net/http"
	"time"
)

// Backoff exposes jitterBackoff to the black-box tests.
func Backoff(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
	return jitterBackoff(lo, hi, n, resp)
}
