package httpapi

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stockfence/stockfence/shared/httpio"
	"github.com/stockfence/stockfence/shared/problem"
)

// web holds the storefront and the dashboard: two HTML shells and the
// scripts and styles they load from /assets/, all served from the binary.
//
//go:embed web/storefront.html web/dashboard.html web/assets
var web embed.FS

// pageSecurity is sent with every page and asset: nothing but this origin's
// own scripts, styles and data calls; no framing; no inline script.
var pageSecurity = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// assetTypes are the content types of what web/assets holds.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// storefrontPage serves GET /: the shop. It is public; its calls to /catalog
// and /orders carry the shopper's token.
func (h *handler) storefrontPage(w http.ResponseWriter, r *http.Request) {
	h.serveWeb(w, r, "web/storefront.html", "text/html; charset=utf-8")
}

// dashboardPage serves GET /ops/: the operators' dashboard. It is public;
// its calls to /ops/* carry the admin token the operator signs in with.
func (h *handler) dashboardPage(w http.ResponseWriter, r *http.Request) {
	h.serveWeb(w, r, "web/dashboard.html", "text/html; charset=utf-8")
}

func (h *handler) redirectToDashboard(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/ops/", http.StatusMovedPermanently)
}

// asset serves GET /assets/{name}: a script, style sheet or image of the
// pages; anything else is a 404 problem.
func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	ctype, ok := assetTypes[path.Ext(name)]
	if !ok || !fs.ValidPath(name) {
		problem.Write(w, problem.Newf(http.StatusNotFound, problem.CodeNotFound, "no asset %s", name))
		return
	}
	h.serveWeb(w, r, "web/assets/"+name, ctype)
}

// serveWeb writes one embedded file; the browser revalidates it on every
// load (no-cache), so a new build is picked up at once.
func (h *handler) serveWeb(w http.ResponseWriter, r *http.Request, name, contentType string) {
	body, err := web.ReadFile(name)
	if err != nil {
		problem.Write(w, problem.Newf(http.StatusNotFound, problem.CodeNotFound, "no resource at %s", r.URL.Path))
		return
	}
	for k, v := range pageSecurity {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// getDemoToken serves GET /demo/token, routed only when the service was
// started with a demo token (STOREFRONT_DEMO_TOKEN, local runs only): the
// storefront signs the shopper in with it. The service never mints tokens;
// this hands out the one it was given.
func (h *handler) getDemoToken(w http.ResponseWriter, _ *http.Request) {
	httpio.JSON(w, http.StatusOK, struct {
		Token string `json:"token"`
	}{h.demoToken})
}
