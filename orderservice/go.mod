module github.com/stockfence/stockfence/orderservice

go 1.26.0

replace (
	github.com/stockfence/stockfence/shared => ../shared
	github.com/stockfence/stockfence/sql => ../sql
)

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/go-sql-driver/mysql v1.10.1
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/google/uuid v1.6.0
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/sony/gobreaker/v2 v2.4.0
	github.com/stockfence/stockfence/shared v0.0.0
	github.com/stockfence/stockfence/sql v0.0.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/mfridman/interpolate v0.0.2 // indirect
	github.com/pressly/goose/v3 v3.29.0 // indirect
	github.com/sethvargo/go-retry v0.5.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
