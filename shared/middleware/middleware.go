// Package middleware holds the HTTP middleware both services put in front of
// their routes: request ids that reach the client, panics turned into problem
// responses, and one structured access-log line per request.
package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stockfence/stockfence/shared/httpio"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// RequestID assigns a request id (reusing an incoming X-Request-Id) and
// returns it in the response header.
func RequestID(next http.Handler) http.Handler {
	return chimw.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RequestIDHeader, chimw.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	}))
}

// Recover answers a panicking handler with a 500 problem and logs the panic.
func Recover(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					httpio.Internal(w, r, logger, fmt.Errorf("panic: %v", v))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// AccessLog logs one line per request at debug level for successes and info
// level for errors, with the request id, route, status and duration.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			start := time.Now()
			next.ServeHTTP(ww, r)
			level := slog.LevelDebug
			if ww.Status() >= 400 {
				level = slog.LevelInfo
			}
			logger.Log(r.Context(), level, "http request",
				"requestId", chimw.GetReqID(r.Context()),
				"method", r.Method, "path", r.URL.Path,
				"status", ww.Status(), "bytes", ww.BytesWritten(),
				"duration", time.Since(start))
		})
	}
}
