// Package authz holds the authorization matrix of both services, tested
// against the real system: the binaries built from this checkout, started by
// package stack with an embedded Kafka broker on fresh databases (reached
// with a password, so that its redaction is tested too).
//
// Every route of both routers is listed in the matrix with who may call it
// (public, customer JWT, SERVICE_TOKEN or ADMIN_TOKEN) and a probe request.
// Each protected route is called with every credential that must not open
// it (none, malformed headers, a wrong token, the other services' tokens,
// forged, expired and mislabelled JWTs) and must answer 401 problem+json
// without changing either database; the right credential must get through.
// The matrix is checked for completeness against the security requirements
// that each running service documents in its GET /openapi.yaml (whose
// routes the services' own tests hold equal to their routers), plus the
// routes that are public on purpose and not API (pages, assets, metrics).
//
// The same run checks that another customer's order is a 404 and that a body
// trying to set what the service decides (customer, prices, status, ids,
// totals) is refused and creates nothing, then stops the services and
// checks that no secret and no credential a client sent appears in their
// logs, while the start-up configuration does appear, masked.
package authz
