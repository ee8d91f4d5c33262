// Package ui owns the node's web dashboard: static HTML, CSS and
// JavaScript embedded in the binary (no build step, nothing fetched from
// another origin), served under /ui/ with a Content-Security-Policy of
// its own. The page holds no secret: it loads without a token and sends
// the API token only in the Authorization header of its API calls, so the
// API's own authentication is unchanged.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

// CSP is the dashboard's Content-Security-Policy: scripts, styles, images
// and API calls from this origin only; no inline script or style, no
// plugin, no framing, forms post nowhere else.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Files returns the embedded static files (index.html at the root).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Handler serves the dashboard's files for requests under Prefix, with
// the dashboard's headers (they replace the API's stricter CSP, which
// forbids every resource).
func Handler() http.Handler {
	files := http.StripPrefix(Prefix, http.FileServerFS(Files()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
