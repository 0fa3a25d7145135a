// Package faults injects network faults between the services from the
// outside, so that the production code carries no test hooks: a test points a
// service at a fault injector instead of at its peer (PRODUCT_URL, a DSN) and
// breaks the link at will.
//
// Proxy is a TCP proxy whose faults are toxiproxy's toxics, used in-process
// as a library (no toxiproxy-server, no HTTP API). It speaks no protocol, so
// it works for HTTP and for MySQL alike, and it models transport faults:
// latency, a link that stops carrying data, a TCP reset, a dead peer. Every
// change cuts the connections open through it, so that keep-alive clients
// meet the change on their next request.
//
// BadGateway is an HTTP reverse proxy for the one fault TCP cannot model
// precisely: the request reached the service and was committed, but the
// answer was lost and a gateway answered 502 instead.
//
// Every listener is on 127.0.0.1 with a port picked by the kernel.
package faults
