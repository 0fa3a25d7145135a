// Package browser holds the browser tests of the storefront (GET /) and the
// ops dashboard (GET /ops/) of the order service. Each test starts the real
// system with package stack (both services built from this checkout, an
// embedded Kafka broker, fresh databases on the local MariaDB) and drives
// Debian's headless Chromium with chromedp, as a shopper and an operator
// would.
//
// Chromium is found at $CHROMIUM_PATH, else as chromium or chromium-browser
// on the PATH; a test that cannot find it fails with how to install it
// (apt-get install -y chromium). With SCREENSHOTS=1 the tests save
// docs/img/storefront.png (a confirmed order) and docs/img/dashboard.png (a
// stuck order).
package browser
