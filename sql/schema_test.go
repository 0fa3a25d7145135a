package schema_test

import (
	"context"
	"testing"
	"time"

	"github.com/stockfence/stockfence/shared/mysqldb"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
	schema "github.com/stockfence/stockfence/sql"
)

func TestApplyIsIdempotentAndConcurrent(t *testing.T) {
	for _, set := range []schema.Set{schema.Orders, schema.Products} {
		t.Run(string(set), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db, err := mysqldb.Open(ctx, mysqltest.New(t, "schema"), 8)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()

			if ok, err := schema.Current(ctx, db, set); err != nil || ok {
				t.Fatalf("Current before Apply = %v, %v; want false", ok, err)
			}
			errs := make(chan error, 3)
			for range 3 {
				go func() { errs <- schema.Apply(ctx, db, set) }()
			}
			for range 3 {
				if err := <-errs; err != nil {
					t.Fatalf("Apply: %v", err)
				}
			}
			if ok, err := schema.Current(ctx, db, set); err != nil || !ok {
				t.Fatalf("Current after Apply = %v, %v; want true", ok, err)
			}
		})
	}
}
