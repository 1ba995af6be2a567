package dashboard

import (
	"mime"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// svgNamespace is the one URL an asset may hold: the name of SVG's XML
// namespace, which no browser fetches.
const svgNamespace = `xmlns="http://www.w3.org/2000/svg"`

// Every asset is served with its type, and the names the page refers to
// are exactly what Asset serves.
func TestAssets(t *testing.T) {
	tests := []struct {
		name, mediaType string
	}{
		{"app.js", "text/javascript"},
		{"style.css", "text/css"},
		{"icon.svg", "image/svg+xml"},
	}
	for _, tt := range tests {
		body, ct, ok := Asset(tt.name)
		if !ok || len(body) == 0 {
			t.Errorf("Asset(%q): ok %v, %d bytes; want the file", tt.name, ok, len(body))
			continue
		}
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != tt.mediaType {
			t.Errorf("Asset(%q): Content-Type %q, want %s", tt.name, ct, tt.mediaType)
		}
	}
	if got, want := Assets(), []string{"app.js", "icon.svg", "style.css"}; !slices.Equal(got, want) {
		t.Errorf("Assets() = %q, want %q", got, want)
	}
	for _, name := range []string{"", "index.html", "../dashboard.go", "dashboard.go", "dashboard_test.go", "x/app.js", "nope.js", "APP.JS"} {
		if _, _, ok := Asset(name); ok {
			t.Errorf("Asset(%q) served a file; want only the page's assets", name)
		}
	}
	if mt, _, err := mime.ParseMediaType(PageContentType); err != nil || mt != "text/html" {
		t.Errorf("PageContentType %q is not text/html", PageContentType)
	}
}

// The page refers to its assets under Prefix, and to nothing else.
func TestPageRefersToItsAssets(t *testing.T) {
	page := string(Page())
	refs := regexp.MustCompile(`\s(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) == 0 {
		t.Fatal("index.html refers to no file")
	}
	seen := map[string]bool{}
	for _, m := range refs {
		name, ok := strings.CutPrefix(m[1], Prefix)
		if !ok {
			t.Errorf("index.html refers to %q, not under %s", m[1], Prefix)
			continue
		}
		if _, _, ok := Asset(name); !ok {
			t.Errorf("index.html refers to %q, which Asset does not serve", m[1])
		}
		seen[name] = true
	}
	for _, name := range Assets() {
		if !seen[name] {
			t.Errorf("index.html does not use the asset %q", name)
		}
	}
}

// Nothing comes from another host, nothing runs or styles inline (the
// policy forbids both), and the script never turns text into markup.
func TestNothingInlineNothingRemote(t *testing.T) {
	files := map[string]string{"index.html": string(Page())}
	for _, name := range Assets() {
		b, _, _ := Asset(name)
		files[name] = string(b)
	}
	remote := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://`)
	for name, text := range files {
		for _, m := range remote.FindAllString(strings.ReplaceAll(text, svgNamespace, ""), -1) {
			t.Errorf("%s refers to another host: %q", name, m)
		}
	}
	page := files["index.html"]
	checks := []struct {
		what    string
		pattern string
	}{
		{"a style element", `(?i)<style[\s>]`},
		{"a style attribute", `(?i)\sstyle\s*=`},
		{"an event handler attribute", `(?i)\son[a-z]+\s*=`},
		{"a javascript: URL", `(?i)javascript:`},
	}
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if n := strings.Count(strings.ToLower(page), "<script"); n != len(scripts) || n == 0 {
		t.Errorf("index.html has %d script tags, %d of them closed; want only closed ones", n, len(scripts))
	}
	for _, m := range scripts {
		if !regexp.MustCompile(`\ssrc="`).MatchString(m[1]) || strings.TrimSpace(m[2]) != "" {
			t.Errorf("index.html has an inline script: %q", m[0])
		}
	}
	for _, c := range checks {
		if m := regexp.MustCompile(c.pattern).FindString(page); m != "" {
			t.Errorf("index.html has %s: %q", c.what, m)
		}
	}
	js := files["app.js"]
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", `setAttribute("style"`, "cssText"} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s: every value must reach the page as text", sink)
		}
	}
	// setTimeout and setInterval with a string are eval too.
	if m := regexp.MustCompile(`set(?:Timeout|Interval)\(\s*['"\x60]`).FindString(js); m != "" {
		t.Errorf("app.js passes a string to %s", m)
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	directives := map[string]string{}
	for d := range strings.SplitSeq(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if _, dup := directives[name]; dup {
			t.Errorf("directive %s given twice", name)
		}
		directives[name] = value
	}
	want := map[string]string{
		"default-src":               "'none'",
		"script-src":                "'self'",
		"style-src":                 "'self'",
		"connect-src":               "'self'",
		"img-src":                   "'self'",
		"base-uri":                  "'none'",
		"form-action":               "'none'",
		"frame-ancestors":           "'none'",
		"require-trusted-types-for": "'script'",
		"trusted-types":             "'none'",
	}
	for name, v := range want {
		if directives[name] != v {
			t.Errorf("%s is %q, want %q", name, directives[name], v)
		}
	}
	for name := range directives {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected directive %s %s", name, directives[name])
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("the policy allows something unsafe: %s", ContentSecurityPolicy)
	}
}

// Each call gives its own copy: a caller that changes its bytes cannot
// change what the next one serves.
func TestCopies(t *testing.T) {
	p := Page()
	p[0] = 'X'
	if Page()[0] == 'X' {
		t.Error("Page returned shared bytes")
	}
	a, _, _ := Asset("app.js")
	a[0] = 'X'
	if b, _, _ := Asset("app.js"); b[0] == 'X' {
		t.Error("Asset returned shared bytes")
	}
}
