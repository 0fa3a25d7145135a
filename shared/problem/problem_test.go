package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stockfence/stockfence/shared/problem"
)

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	problem.Write(rec, problem.New(http.StatusConflict, "sku_taken", "sku A-1 exists"))

	if got, want := rec.Code, http.StatusConflict; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := rec.Header().Get("Content-Type"), problem.ContentType; got != want {
		t.Fatalf("content type = %q, want %q", got, want)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "title", "status", "detail", "code"} {
		if _, ok := body[k]; !ok {
			t.Errorf("body lacks %q: %s", k, rec.Body)
		}
	}
	if body["code"] != "sku_taken" || body["status"] != float64(409) {
		t.Errorf("body = %s", rec.Body)
	}
}
