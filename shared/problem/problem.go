// Package problem writes RFC 9457 problem+json responses with the stable
// snake_case codes of the contract (validation_failed, unauthorized, ...).
package problem

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// ContentType is the media type of every problem response.
const ContentType = "application/problem+json"

// Stable codes shared by both services. Each service may add its own.
const (
	CodeValidationFailed = "validation_failed"
	CodeBodyTooLarge     = "body_too_large"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal_error"
)

// Problem is the body of an error response. Code is the stable word clients
// switch on; Title and Detail are for humans. Errors lists the individual
// fields that failed validation, when there are several.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Code   string       `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// New returns a problem with the given status, code and detail. Its type is a
// relative URI derived from the code so clients can link documentation to it.
func New(status int, code, detail string) *Problem {
	return &Problem{
		Type:   "/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// Newf is New with a formatted detail.
func Newf(status int, code, format string, args ...any) *Problem {
	return New(status, code, fmt.Sprintf(format, args...))
}

// Error makes a Problem usable as an error value.
func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// Write sends p as the response.
func Write(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
