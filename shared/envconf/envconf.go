// Package envconf reads a service's configuration from environment variables,
// collecting every problem so that a bad start names all the variables at
// once.
package envconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Masked stands in for a secret in logged configuration.
const Masked = "********"

// Reader reads variables through getenv and remembers what was wrong.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// New returns a Reader over getenv (os.Getenv in main, a map in tests).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// String returns the variable, or def when it is unset or blank.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required returns the variable; unset or blank is an error naming it.
func (r *Reader) Required(name string) string {
	v := r.String(name, "")
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// Duration returns the variable as a positive Go duration (1s, 500ms).
func (r *Reader) Duration(name, def string) time.Duration {
	s := r.String(name, def)
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		r.Fail(name, fmt.Errorf("%q is not a duration such as 1s or 500ms", s))
	case d <= 0:
		r.Fail(name, fmt.Errorf("must be positive, got %s", s))
	}
	return d
}

// Int returns the variable as an integer between lo and hi.
func (r *Reader) Int(name string, def, lo, hi int) int {
	s := r.String(name, strconv.Itoa(def))
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		r.Fail(name, fmt.Errorf("%q is not an integer from %d to %d", s, lo, hi))
	}
	return n
}

// Switch returns whether the variable is "on" (it must be "on" or "off";
// def is one of them).
func (r *Reader) Switch(name, def string) bool {
	switch s := r.String(name, def); s {
	case "on", "off":
		return s == "on"
	default:
		r.Fail(name, fmt.Errorf("%q: want on or off", s))
		return def == "on"
	}
}

// Fail records a problem with the named variable.
func (r *Reader) Fail(name string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s: %w", name, err))
}

// Err returns every problem found, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Mask returns Masked for a set secret and "" for an unset one.
func Mask(secret string) string {
	if secret == "" {
		return ""
	}
	return Masked
}
