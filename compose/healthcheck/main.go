// Command healthcheck is the container healthcheck of the service images: it
// GETs one URL and exits 0 if the answer is 2xx within the timeout, 1
// otherwise (2 on bad usage).
//
//	healthcheck [-timeout 3s] http://127.0.0.1:8081/readyz
//
// The runtime image is distroless (no shell, curl or wget), so compose runs
// this static binary in exec form. Proxy variables are ignored and redirects
// are not followed: the probe is about this container's own listener.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "deadline of the whole request")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: healthcheck [-timeout 3s] URL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := probe(flag.Arg(0), *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}

func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
