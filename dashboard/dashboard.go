// Package dashboard is parkd's page for people, served at GET /
// (docs/API.md, section 8): the parked requests live, a kill button on
// each row, a form that parks a test request, the outcome counters, the
// recent history and a chart of the parked count. The page is plain HTML,
// CSS and JavaScript embedded in the binary: no build step, and nothing
// loaded from another host, so it works offline.
//
// The page is fed by GET /api/events and also reads GET /api/history,
// GET /metrics, PUT /api/kill and GET /api/request. Its files refer to
// each other under Prefix; the server answers GET / with Page and
// GET Prefix+name with Asset, and sends ContentSecurityPolicy with Page.
//
// Everything here is read-only and safe for concurrent use: each call
// returns its own copy of the bytes.
package dashboard

import (
	"embed"
	"path"
	"strings"
)

// Prefix is the path the page's own files are served under: index.html
// loads Prefix+"app.js", Prefix+"style.css" and Prefix+"icon.svg".
const Prefix = "/dashboard/"

// ContentSecurityPolicy is the header to send with Page. It lets the page
// run only its own script and style sheet (no inline script, style
// attribute or eval), talk only to its own server, and be framed by no
// one; Trusted Types make any assignment of a string to an HTML sink
// (innerHTML and the like) throw, so untrusted text can never become
// markup. The canvas chart needs no image source.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// files are the page and its assets.
//
//go:embed index.html app.js style.css icon.svg
var files embed.FS

// Page is index.html, to be served as text/html; charset=utf-8 with
// ContentSecurityPolicy.
func Page() []byte {
	b, err := files.ReadFile("index.html")
	if err != nil {
		panic("dashboard: index.html is not embedded") // go:embed guarantees it
	}
	return b
}

// PageContentType is the Content-Type of Page.
const PageContentType = "text/html; charset=utf-8"

// Asset is the file name (the path after Prefix, e.g. "app.js") and its
// Content-Type; ok is false for a name that is not one of the page's
// assets (index.html is served only as Page, at /).
func Asset(name string) (body []byte, contentType string, ok bool) {
	if name == "index.html" || name == "" || strings.ContainsAny(name, "/\\") {
		return nil, "", false
	}
	contentType, ok = assetTypes(path.Ext(name))
	if !ok {
		return nil, "", false
	}
	body, err := files.ReadFile(name)
	if err != nil {
		return nil, "", false
	}
	return body, contentType, true
}

// Assets lists the names Asset serves.
func Assets() []string {
	entries, _ := files.ReadDir(".")
	var names []string
	for _, e := range entries {
		if _, ok := assetTypes(path.Ext(e.Name())); ok && e.Name() != "index.html" {
			names = append(names, e.Name())
		}
	}
	return names
}

func assetTypes(ext string) (string, bool) {
	switch ext {
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	}
	return "", false
}
