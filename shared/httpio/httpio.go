// Package httpio decodes request bodies under the contract's input limits and
// writes JSON and problem responses the same way in both services.
package httpio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/problem"
)

// Decode reads one JSON value of at most contract.MaxBodyBytes from the body
// into dst. Unknown fields, trailing data and a body that is too large are
// rejected; the returned problem (413 or 400) is ready to be written.
func Decode(w http.ResponseWriter, r *http.Request, dst any) *problem.Problem {
	return DecodeLimit(w, r, dst, contract.MaxBodyBytes)
}

// DecodeLimit is Decode for a body of at most limit bytes.
func DecodeLimit(w http.ResponseWriter, r *http.Request, dst any, limit int64) *problem.Problem {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeProblem(err, limit)
		}
		return problem.New(http.StatusBadRequest, problem.CodeValidationFailed, "body must hold a single JSON value")
	}
	return nil
}

func decodeProblem(err error, limit int64) *problem.Problem {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return problem.Newf(http.StatusRequestEntityTooLarge, problem.CodeBodyTooLarge, "body exceeds %d bytes", limit)
	case errors.Is(err, io.EOF):
		return problem.New(http.StatusBadRequest, problem.CodeValidationFailed, "body is empty")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(http.StatusBadRequest, problem.CodeValidationFailed, "body is not valid JSON")
	case errors.As(err, &typeError):
		return problem.Newf(http.StatusBadRequest, problem.CodeValidationFailed, "field %q must be a %s", typeError.Field, typeError.Type)
	default:
		// DisallowUnknownFields reports `json: unknown field "x"`; it has no type.
		return problem.New(http.StatusBadRequest, problem.CodeValidationFailed, err.Error())
	}
}

// Invalid returns the 400 validation problem for a list of field errors.
func Invalid(errs []problem.FieldError) *problem.Problem {
	p := problem.New(http.StatusBadRequest, problem.CodeValidationFailed, fmt.Sprintf("%s: %s", errs[0].Field, errs[0].Message))
	p.Errors = errs
	return p
}

// JSON writes v with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Internal logs err once with the request id and answers 500 without
// revealing it; the client can quote the X-Request-Id header.
func Internal(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	problem.Write(w, InternalProblem(r, logger, err))
}

// InternalProblem logs err once with the request id and returns the 500
// problem that answers it without revealing it.
func InternalProblem(r *http.Request, logger *slog.Logger, err error) *problem.Problem {
	logger.ErrorContext(r.Context(), "internal error",
		"requestId", middleware.GetReqID(r.Context()),
		"method", r.Method, "path", r.URL.Path, "err", err)
	return problem.New(http.StatusInternalServerError, problem.CodeInternal, "internal error")
}
