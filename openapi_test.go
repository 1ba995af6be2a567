package main

// docs/openapi.yaml against the server: the document is valid OpenAPI 3.1,
// it names exactly the routes and methods parkd answers, and it describes
// every kind of answer parkd gives. Real answers from real servers are
// checked with kin-openapi; an answer the document does not describe fails.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

const openAPIFile = "docs/openapi.yaml"

// allMethods are the methods the route checks try on every path.
var allMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}

// apiDoc is docs/openapi.yaml, loaded and validated, with a router that
// finds the operation a request addresses.
type apiDoc struct {
	doc    *openapi3.T
	router routers.Router
}

func loadAPIDoc(t *testing.T) *apiDoc {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIFile)
	if err != nil {
		t.Fatalf("loading %s: %v", openAPIFile, err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", openAPIFile, err)
	}
	// The document names parkd's default address; a test's server listens
	// on another port, and the router would match on the host.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing %s: %v", openAPIFile, err)
	}
	return &apiDoc{doc: doc, router: router}
}

// methods lists the methods the document gives path, sorted.
func (d *apiDoc) methods(path string) []string {
	var ms []string
	for m := range d.doc.Paths.Value(path).Operations() {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}

// answer is one real answer, as the document is checked against it.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.code, clip(a.body)) }

// check says how a real answer to req departs from the document: nil when
// the operation req addresses describes it, status, headers and body. A
// method the path does not take is checked against the 405 of each of the
// path's operations.
func (d *apiDoc) check(req *http.Request, a answer) error {
	route, params, err := d.router.FindRoute(req)
	if errors.Is(err, routers.ErrMethodNotAllowed) {
		checked := 0
		for _, m := range allMethods {
			as := req.Clone(context.Background())
			as.Method = m
			route, params, err := d.router.FindRoute(as)
			if err != nil {
				continue
			}
			if err := d.checkOperation(route, params, as, a, req.Method == http.MethodHead); err != nil {
				return fmt.Errorf("as the 405 of %s %s: %w", m, route.Path, err)
			}
			checked++
		}
		if checked == 0 {
			return fmt.Errorf("no operation of the document has the path of %s %s", req.Method, req.URL.Path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("the document has no operation %s %s: %w", req.Method, req.URL.Path, err)
	}
	return d.checkOperation(route, params, req, a, req.Method == http.MethodHead)
}

// checkComponent checks an answer that no operation gives (an unknown
// path, a request that could not be read) against the response component
// name, standing for status code.
func (d *apiDoc) checkComponent(name string, code int, req *http.Request, a answer) error {
	ref := d.doc.Components.Responses[name]
	if ref == nil {
		return fmt.Errorf("the document has no response component %q", name)
	}
	route := &routers.Route{
		Spec:      d.doc,
		Path:      req.URL.Path,
		Method:    req.Method,
		Operation: &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(code, ref))},
	}
	return d.checkOperation(route, nil, req, a, req.Method == http.MethodHead)
}

// checkOperation validates a against route's operation. A status the
// operation does not list fails; so does a body where it lists none, which
// kin-openapi lets through.
func (d *apiDoc) checkOperation(route *routers.Route, params map[string]string, req *http.Request, a answer, noBody bool) error {
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 a.code,
		Header:                 a.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: noBody},
	}
	in.SetBodyBytes(a.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	if ref := route.Operation.Responses.Status(a.code); ref != nil && len(ref.Value.Content) == 0 && len(a.body) > 0 {
		return fmt.Errorf("the document gives %d no body; got %s", a.code, clip(a.body))
	}
	return nil
}

// checkRequest says whether the document's parameters accept req.
func (d *apiDoc) checkRequest(req *http.Request) error {
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
	})
}

// fetch sends one request with ts.client and reads the whole answer,
// whatever its Content-Type.
func fetch(ts *testServer, method, path, body, contentType string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}, err
}

// keptConn is a client connection written and read as raw bytes, for
// requests net/http will not send and for a connection kept open across
// the start of a shutdown.
type keptConn struct {
	c  net.Conn
	br *bufio.Reader
}

// dialKept opens a connection that the test's cleanup closes.
func dialKept(t *testing.T, addr string) *keptConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &keptConn{c, bufio.NewReader(c)}
}

// exchange writes request and reads one answer to it, within waitBound.
func (k *keptConn) exchange(method, request string) (answer, error) {
	if err := k.c.SetDeadline(time.Now().Add(waitBound)); err != nil {
		return answer{}, err
	}
	if _, err := io.WriteString(k.c, request); err != nil {
		return answer{}, err
	}
	resp, err := http.ReadResponse(k.br, &http.Request{Method: method})
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}, err
}

// parked is the one answer of a request parked on a goroutine of its own.
type parked struct {
	id string
	ch chan result
}

type result struct {
	a   answer
	err error
}

// parker parks requests that stay parked until a case ends them. Its
// goroutines are waited for by a cleanup registered before the server's,
// so it runs after it: shutdown ends whatever is still parked.
type parker struct {
	t  *testing.T
	ts *testServer
	wg *sync.WaitGroup
}

func newParker(t *testing.T, wg *sync.WaitGroup, ts *testServer) parker {
	return parker{t, ts, wg}
}

// hold parks id for timeout seconds and waits until it is listed.
func (p parker) hold(id, timeout string) parked {
	p.t.Helper()
	h := parked{id, make(chan result, 1)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		a, err := fetch(p.ts, http.MethodGet, parkPath(id, timeout), "", "")
		h.ch <- result{a, err}
	}()
	end := time.Now().Add(waitBound)
	for {
		a, err := fetch(p.ts, http.MethodGet, "/api/requests/"+url.PathEscape(id), "", "")
		if err == nil && a.code == http.StatusOK {
			return h
		}
		if time.Now().After(end) {
			p.t.Fatalf("%q was never listed: last %v, %v", id, a, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// await is the held request's answer, within waitBound.
func (h parked) await(t *testing.T) answer {
	t.Helper()
	select {
	case r := <-h.ch:
		if r.err != nil {
			t.Fatalf("parked %q: %v", h.id, r.err)
		}
		return r.a
	case <-time.After(waitBound):
		t.Fatalf("parked %q: no answer within %v", h.id, waitBound)
		return answer{}
	}
}

// checkAgainst fails t if the document does not describe a as the answer
// to method path (with component, as that response component).
func (d *apiDoc) checkAgainst(t *testing.T, what, method, path, component string, code int, a answer) {
	t.Helper()
	req, err := http.NewRequest(method, "http://parkd"+path, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if component != "" {
		err = d.checkComponent(component, code, req, a)
	} else {
		err = d.check(req, a)
	}
	if err != nil {
		t.Errorf("%s: the document does not describe the answer %v (%s):\n%v", what, a, a.header, err)
	}
}

// The document is valid OpenAPI 3.1, its examples match their schemas, and
// its routes are the server's: every path it lists answers a method it does
// not list with 405 and an Allow of exactly the methods it lists, and the
// server's own list of routes (in its 404 answer) is the document's.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	api := loadAPIDoc(t)
	if !api.doc.IsOpenAPI31OrLater() || api.doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi is %q, want 3.1.0", api.doc.OpenAPI)
	}
	// Validate checks the examples of media types, not those of schemas.
	for name, ref := range api.doc.Components.Schemas {
		for i, ex := range ref.Value.Examples {
			if err := api.doc.ValidateSchemaJSON(ref.Value, ex, openapi3.EnableJSONSchema2020()); err != nil {
				t.Errorf("schema %s: example %d does not match it: %v", name, i, err)
			}
		}
	}

	ts := startServer(t, testConfig())
	var paths []string
	for path := range api.doc.Paths.Map() {
		paths = append(paths, path)
		documented := api.methods(path)
		if len(documented) == 0 {
			t.Errorf("%s has no operation", path)
			continue
		}
		concrete := strings.ReplaceAll(path, "{connId}", "probe")
		for _, m := range allMethods {
			if slices.Contains(documented, m) {
				continue
			}
			a, err := fetch(ts, m, concrete, "", "")
			if err != nil {
				t.Errorf("%s %s: %v", m, concrete, err)
				continue
			}
			if a.code != http.StatusMethodNotAllowed || a.header.Get("Allow") != strings.Join(documented, ", ") {
				t.Errorf("%s %s: got %v with Allow %q; the document lists %v", m, concrete, a, a.header.Get("Allow"), documented)
			}
		}
	}
	slices.Sort(paths)

	a, err := fetch(ts, http.MethodGet, "/no-such-route", "", "")
	if err != nil {
		t.Fatalf("GET /no-such-route: %v", err)
	}
	_, list, found := strings.Cut(string(a.body), "; the routes are ")
	if a.code != http.StatusNotFound || !found {
		t.Fatalf("GET /no-such-route: got %v, want 404 listing the routes", a)
	}
	list, _, _ = strings.Cut(list, `"`)
	var served []string
	for p := range strings.SplitSeq(list, ", ") {
		served = append(served, p)
	}
	slices.Sort(served)
	if !slices.Equal(served, paths) {
		t.Errorf("the server's routes are %q, the document's %q", served, paths)
	}
}

// paramCheck is what the document's parameters should say of a request.
type paramCheck int

const (
	// paramsUnchecked: the rule is one the document cannot state (a
	// repeated parameter, -max-timeout, invalid UTF-8), or the route takes
	// bodies kin-openapi reads differently from parkd.
	paramsUnchecked paramCheck = iota
	paramsValid
	paramsInvalid
)

// exchangeCase is one kind of request and the answer the contract gives it.
type exchangeCase struct {
	name        string
	method      string
	path        string // as sent, query included; for raw, what the document is asked about
	body        string
	contentType string
	raw         string // when set, these bytes are sent instead, on a connection of their own
	hold        string // a connId parked (600 s) before the request
	code        int    // the status the contract gives
	heldCode    int    // when not 0, the status the held request then answers
	params      paramCheck
	component   string              // for an answer no operation gives: the response component for it
	want        func(answer) string // more the answer must show; "" when it does
}

// TestResponsesMatchOpenAPI sends every kind of request the contract
// lists and checks each real answer against the document.
func TestResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	api := loadAPIDoc(t)

	t.Run("the check refuses what the document does not describe", func(t *testing.T) {
		t.Parallel()
		api.checkRefusesUndescribed(t)
	})
	t.Run("routes", func(t *testing.T) {
		t.Parallel()
		api.checkRoutes(t)
	})
	t.Run("capacity", func(t *testing.T) {
		t.Parallel()
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		cfg := testConfig()
		cfg.capacity = 1
		ts := startServer(t, cfg)
		newParker(t, &wg, ts).hold("cap-1", "600")
		for _, timeout := range []string{"5", "0"} {
			path := parkPath("cap-2", timeout)
			a, err := fetch(ts, http.MethodGet, path, "", "")
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
				t.Errorf("GET %s with the capacity full: got %v, Retry-After %q; want 503 with Retry-After: 1", path, a, a.header.Get("Retry-After"))
			}
			api.checkAgainst(t, "GET "+path, http.MethodGet, path, "", 0, a)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		api.checkShutdown(t)
	})
	t.Run("unreadable requests", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, testConfig(), func(s *server) { s.http.ReadTimeout = 300 * time.Millisecond })
		for _, tt := range []struct {
			name, request, component string
			code                     int
		}{
			{"not HTTP", "NOT HTTP AT ALL\r\n\r\n", "MalformedRequest", http.StatusBadRequest},
			{"headers over 8 KiB", getRequest("/api/serverStatus", "X-Pad: "+strings.Repeat("p", 9000)+"\r\n"), "RequestHeaderFieldsTooLarge", http.StatusRequestHeaderFieldsTooLarge},
			{"a body over 4 KiB on a route that takes none", "POST /healthz HTTP/1.1\r\nHost: parkd\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("b", 5000), "PayloadTooLarge", http.StatusRequestEntityTooLarge},
			{"half a request line, then nothing", "GET /api/serverStatus HT", "RequestTimeout", http.StatusRequestTimeout},
		} {
			a, err := dialKept(t, ts.addr).exchange(http.MethodGet, tt.request)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			if a.code != tt.code {
				t.Errorf("%s: got %v, want %d", tt.name, a, tt.code)
			}
			api.checkAgainst(t, tt.name, http.MethodGet, "/api/serverStatus", tt.component, tt.code, a)
		}
	})
}

// checkRoutes is the table: every route, every error case of docs/API.md
// sections 1 to 4, and the answers of parked requests.
func (d *apiDoc) checkRoutes(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	ts := startServer(t, testConfig())
	p := newParker(t, &wg, ts)
	p.hold("held", "600") // stays parked: the listings show it, a second park of it is a 409

	listsHeld := func(a answer) string {
		if !strings.Contains(string(a.body), `"connId":"held"`) && !strings.Contains(string(a.body), `"held":"`) {
			return "does not list the parked request held"
		}
		return ""
	}
	file, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	isTheFile := func(a answer) string {
		if string(a.body) != string(file) {
			return "is not " + openAPIFile
		}
		return ""
	}
	long := strings.Repeat("x", 129)
	hugeKill := `{"connId":"big"` + strings.Repeat(" ", 5000) + "}"
	cases := []exchangeCase{
		// Section 1: park.
		{name: "park ok", method: "GET", path: parkPath("ok", "0.05"), code: 200, params: paramsValid},
		{name: "park timeout 0", method: "GET", path: parkPath("zero", "0"), code: 200, params: paramsValid},
		{name: "park 007", method: "GET", path: parkPath("sevens", "0.007"), code: 200, params: paramsValid},
		{name: "park connId with ; and é", method: "GET", path: "/api/request?connId=a;b%C3%A9&timeout=0", code: 200},
		{name: "park connId of 128 bytes", method: "GET", path: parkPath(long[:128], "0"), code: 200, params: paramsValid},
		{name: "connId missing", method: "GET", path: "/api/request?timeout=1", code: 400, params: paramsInvalid},
		{name: "connId repeated", method: "GET", path: "/api/request?connId=a&connId=b&timeout=1", code: 400},
		{name: "connId empty", method: "GET", path: "/api/request?connId=&timeout=1", code: 400, params: paramsInvalid},
		{name: "connId of 129 bytes", method: "GET", path: parkPath(long, "1"), code: 400, params: paramsInvalid},
		{name: "connId with a control character", method: "GET", path: "/api/request?connId=a%01b&timeout=1", code: 400, params: paramsInvalid},
		{name: "connId with a C1 control character", method: "GET", path: "/api/request?connId=a%C2%85b&timeout=1", code: 400, params: paramsInvalid},
		{name: "connId not UTF-8", method: "GET", path: "/api/request?connId=a%FFb&timeout=1", code: 400},
		{name: "connId with a bad escape", method: "GET", path: "/api/request?connId=a%zzb&timeout=1", code: 400},
		{name: "timeout missing", method: "GET", path: "/api/request?connId=t", code: 400, params: paramsInvalid},
		{name: "timeout repeated", method: "GET", path: "/api/request?connId=t&timeout=1&timeout=2", code: 400},
		{name: "timeout 1e3", method: "GET", path: parkPath("t", "1e3"), code: 400, params: paramsInvalid},
		{name: "timeout -1", method: "GET", path: parkPath("t", "-1"), code: 400, params: paramsInvalid},
		{name: "timeout .5", method: "GET", path: parkPath("t", ".5"), code: 400, params: paramsInvalid},
		{name: "timeout 5.", method: "GET", path: parkPath("t", "5."), code: 400, params: paramsInvalid},
		{name: "timeout NaN", method: "GET", path: parkPath("t", "NaN"), code: 400, params: paramsInvalid},
		{name: "timeout with a space", method: "GET", path: parkPath("t", "+1"), code: 400, params: paramsInvalid},
		{name: "timeout above the maximum", method: "GET", path: parkPath("t", "3600.001"), code: 400},
		{name: "connId parked already", method: "GET", path: parkPath("held", "1"), code: 409, params: paramsValid},
		{name: "park with POST", method: "POST", path: parkPath("m", "1"), code: 405},
		{name: "park with HEAD", method: "HEAD", path: parkPath("m", "1"), code: 405},

		// Section 2: serverStatus.
		{name: "serverStatus", method: "GET", path: "/api/serverStatus", code: 200, params: paramsValid, want: listsHeld},
		{name: "serverStatus with PUT", method: "PUT", path: "/api/serverStatus", code: 405},

		// Section 3: kill, in every form.
		{name: "kill JSON number", method: "PUT", path: "/api/kill", body: `{"connId":101}`, contentType: "application/json", hold: "101", code: 200, heldCode: 500},
		{name: "kill JSON string", method: "PUT", path: "/api/kill", body: `{"connId":"k-str"}`, contentType: "application/json", hold: "k-str", code: 200, heldCode: 500},
		{name: "kill as curl -d {\"connId\"=12} sends it", method: "PUT", path: "/api/kill", body: `{connId=k-seed}`, contentType: "application/x-www-form-urlencoded", hold: "k-seed", code: 200, heldCode: 500},
		{name: `kill {"connId"=ID} verbatim`, method: "PUT", path: "/api/kill", body: `{"connId"="k-verb"}`, hold: "k-verb", code: 200, heldCode: 500},
		{name: "kill form body", method: "PUT", path: "/api/kill", body: "connId=k-form", contentType: "application/x-www-form-urlencoded", hold: "k-form", code: 200, heldCode: 500},
		{name: "kill query", method: "PUT", path: "/api/kill?connId=k-query", hold: "k-query", code: 200, heldCode: 500},
		{name: "kill same id twice", method: "PUT", path: "/api/kill?connId=k-twice", body: `{"connId":"k-twice"}`, contentType: "application/json", hold: "k-twice", code: 200, heldCode: 500},
		{name: "kill unknown", method: "PUT", path: "/api/kill", body: `{"connId":"nobody"}`, contentType: "application/json", code: 400,
			want: func(a answer) string {
				if string(a.body) != `{"status":"invalid connection Id : nobody"}` {
					return "is not the original sentence"
				}
				return ""
			}},
		{name: "kill without connId", method: "PUT", path: "/api/kill", code: 400},
		{name: "kill with two connIds", method: "PUT", path: "/api/kill?connId=a", body: `{"connId":"b"}`, contentType: "application/json", code: 400},
		{name: "kill with an unreadable body", method: "PUT", path: "/api/kill", body: `{"connId":`, contentType: "application/json", code: 400},
		{name: "kill body over 4 KiB", method: "PUT", path: "/api/kill", code: 413,
			raw: "PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nContent-Type: application/json\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(hugeKill)) + hugeKill},
		{name: "kill with GET", method: "GET", path: "/api/kill?connId=held", code: 405},

		// Section 4: the resource API and parkd's own routes.
		{name: "requests", method: "GET", path: "/api/requests", code: 200, params: paramsValid, want: listsHeld},
		{name: "requests with POST", method: "POST", path: "/api/requests", code: 405},
		{name: "one request", method: "GET", path: "/api/requests/held", code: 200, params: paramsValid},
		{name: "one request, escaped id", method: "GET", path: "/api/requests/a%2Fb%20c+d", hold: "a/b c+d", code: 200, params: paramsValid,
			want: func(a answer) string {
				if !strings.Contains(string(a.body), `"connId":"a/b c+d"`) {
					return "is not the request a/b c+d"
				}
				return ""
			}},
		{name: "one request not parked", method: "GET", path: "/api/requests/nobody", code: 404, params: paramsValid},
		{name: "one request, bad escape", method: "GET", path: "/api/requests/x", raw: getRequest("/api/requests/a%zz"), code: 400},
		{name: "delete", method: "DELETE", path: "/api/requests/k-del", hold: "k-del", code: 204, heldCode: 500, params: paramsValid},
		{name: "delete not parked", method: "DELETE", path: "/api/requests/nobody", code: 404, params: paramsValid},
		{name: "delete, bad escape", method: "DELETE", path: "/api/requests/x", raw: "DELETE /api/requests/%zz HTTP/1.1\r\nHost: parkd\r\n\r\n", code: 400},
		{name: "one request with PUT", method: "PUT", path: "/api/requests/held", code: 405},
		{name: "one request with OPTIONS", method: "OPTIONS", path: "/api/requests/held", code: 405},
		{name: "healthz", method: "GET", path: "/healthz", code: 200, params: paramsValid},
		{name: "healthz with POST", method: "POST", path: "/healthz", code: 405},
		{name: "readyz", method: "GET", path: "/readyz", code: 200, params: paramsValid},
		{name: "readyz with DELETE", method: "DELETE", path: "/readyz", code: 405},
		{name: "metrics", method: "GET", path: "/metrics", code: 200, params: paramsValid},
		{name: "metrics with PUT", method: "PUT", path: "/metrics", code: 405},
		{name: "openapi.yaml", method: "GET", path: "/openapi.yaml", code: 200, params: paramsValid, want: isTheFile},
		{name: "openapi.yaml with HEAD", method: "HEAD", path: "/openapi.yaml", code: 405},
		{name: "unknown path", method: "GET", path: "/nope", code: 404, component: "NotFound"},
		{name: "unknown path with DELETE", method: "DELETE", path: "/", code: 404, component: "NotFound"},
		{name: "requests/ without an id", method: "GET", path: "/api/requests/", code: 404, component: "NotFound"},
		{name: "a trailing slash", method: "GET", path: "/api/serverStatus/", code: 404, component: "NotFound"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var held parked
			if tt.hold != "" {
				held = p.hold(tt.hold, "600")
			}
			var a answer
			var err error
			if tt.raw != "" {
				a, err = dialKept(t, ts.addr).exchange(tt.method, tt.raw)
			} else {
				a, err = fetch(ts, tt.method, tt.path, tt.body, tt.contentType)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			if a.code != tt.code {
				t.Errorf("%s %s: got %v, want %d", tt.method, tt.path, a, tt.code)
			}
			if tt.want != nil {
				if why := tt.want(a); why != "" {
					t.Errorf("%s %s: the answer %v %s", tt.method, tt.path, a, why)
				}
			}
			d.checkAgainst(t, tt.method+" "+tt.path, tt.method, tt.path, tt.component, tt.code, a)
			if tt.params != paramsUnchecked {
				req, err := http.NewRequest(tt.method, "http://parkd"+tt.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = d.checkRequest(req)
				switch {
				case tt.params == paramsValid && err != nil:
					t.Errorf("%s %s: parkd takes it, the document's parameters do not: %v", tt.method, tt.path, err)
				case tt.params == paramsInvalid && err == nil:
					t.Errorf("%s %s: parkd refuses it, the document's parameters do not", tt.method, tt.path)
				}
			}
			if tt.heldCode != 0 {
				path := parkPath(held.id, "600")
				h := held.await(t)
				if h.code != tt.heldCode {
					t.Errorf("the held request %s: got %v, want %d", held.id, h, tt.heldCode)
				}
				d.checkAgainst(t, "the held request", http.MethodGet, path, "", 0, h)
			}
		})
	}
}

// checkShutdown checks the answers of a draining server, on a connection
// opened before the shutdown: a parked request beyond the grace ends with
// 503, readyz says 503, a new park is refused, and one within the grace is
// still parked (so the drain lasts) until the test kills it.
func (d *apiDoc) checkShutdown(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	cfg := testConfig()
	cfg.grace = 10 * time.Minute
	ts := startServer(t, cfg)
	p := newParker(t, &wg, ts)

	open := dialKept(t, ts.addr)
	ask := func(what, method, path, request string, code int) {
		t.Helper()
		a, err := open.exchange(method, request)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if a.code != code {
			t.Errorf("%s: got %v, want %d", what, a, code)
		}
		d.checkAgainst(t, what, method, path, "", 0, a)
	}
	ask("readyz before the shutdown", http.MethodGet, "/readyz", getRequest("/readyz"), http.StatusOK)
	beyond := p.hold("beyond", "3600")
	within := p.hold("within", "60")

	ts.cancel()
	a := beyond.await(t)
	if a.code != http.StatusServiceUnavailable || string(a.body) != bodyShuttingDown {
		t.Errorf("parked beyond the grace: got %v, want 503 %s", a, bodyShuttingDown)
	}
	d.checkAgainst(t, "parked beyond the grace", http.MethodGet, parkPath("beyond", "3600"), "", 0, a)

	ask("readyz while draining", http.MethodGet, "/readyz", getRequest("/readyz"), http.StatusServiceUnavailable)
	ask("a park while draining", http.MethodGet, parkPath("late", "1"), getRequest(parkPath("late", "1")), http.StatusServiceUnavailable)
	ask("kill while draining", http.MethodPut, "/api/kill?connId=within",
		"PUT /api/kill?connId=within HTTP/1.1\r\nHost: parkd\r\nContent-Length: 0\r\n\r\n", http.StatusOK)
	a = within.await(t)
	if a.code != http.StatusInternalServerError {
		t.Errorf("killed while draining: got %v, want 500", a)
	}
	d.checkAgainst(t, "killed while draining", http.MethodGet, parkPath("within", "60"), "", 0, a)
	if code, ok := ts.wait(); !ok || code != 0 {
		t.Errorf("serve returned %d (returned: %v), want 0", code, ok)
	}
}

// checkRefusesUndescribed feeds the check answers the document does not
// describe: each must fail, or the real answers' passing would say nothing.
func (d *apiDoc) checkRefusesUndescribed(t *testing.T) {
	ok := http.Header{"Server": {"parkd"}, "Content-Type": {"application/json"}}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	park := parkPath("x", "1")
	for _, tt := range []struct {
		name, method, path, component string
		a                             answer
	}{
		{"a body the document does not give", "GET", park, "", answer{200, ok, []byte(`{"status":"okay"}`)}},
		{"an extra member", "GET", park, "", answer{200, ok, []byte(`{"status":"ok","x":1}`)}},
		{"no Server header", "GET", park, "", answer{200, with(ok, "Server", ""), []byte(`{"status":"ok"}`)}},
		{"another Server", "GET", park, "", answer{200, with(ok, "Server", "nginx"), []byte(`{"status":"ok"}`)}},
		{"a status the operation does not list", "GET", park, "", answer{418, ok, []byte(`{"status":"error","error":"x"}`)}},
		{"not JSON", "GET", park, "", answer{200, with(ok, "Content-Type", "text/html"), []byte(`<p>ok</p>`)}},
		{"an error without its sentence", "GET", park, "", answer{400, ok, []byte(`{"status":"error"}`)}},
		{"a Retry-After other than 1", "GET", park, "", answer{503, with(ok, "Retry-After", "5"), []byte(`{"status":"error","error":"full"}`)}},
		{"serverStatus showing 0", "GET", "/api/serverStatus", "", answer{200, ok, []byte(`{"12":"0"}`)}},
		{"serverStatus with a number", "GET", "/api/serverStatus", "", answer{200, ok, []byte(`{"12":7}`)}},
		{"serverStatus with a control character in an id", "GET", "/api/serverStatus", "", answer{200, ok, []byte(`{"a\u0001":"7"}`)}},
		{"a resource without remoteAddr", "GET", "/api/requests", "", answer{200, ok, []byte(
			`[{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35.146Z"}]`)}},
		{"a deadline without milliseconds", "GET", "/api/requests/1", "", answer{200, ok, []byte(
			`{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35Z","remoteAddr":"127.0.0.1:1"}`)}},
		{"a body on 204", "DELETE", "/api/requests/1", "", answer{204, ok, []byte(`{}`)}},
		{"a 405 without Allow", "GET", "/api/kill", "", answer{405, ok, []byte(`{"status":"method not allowed","error":"x"}`)}},
		{"a 405 with a wrong Allow", "GET", "/api/kill", "", answer{405, with(ok, "Allow", "GET, PUT"), []byte(`{"status":"method not allowed","error":"x"}`)}},
		{"metrics as JSON", "GET", "/metrics", "", answer{200, ok, []byte(`{}`)}},
		{"metrics without parkd's", "GET", "/metrics", "", answer{200, with(ok, "Content-Type", "text/plain"), []byte("# TYPE go_goroutines gauge\n")}},
		{"a 404 with another status", "GET", "/nope", "NotFound", answer{404, ok, []byte(`{"status":"error","error":"x"}`)}},
	} {
		req, err := http.NewRequest(tt.method, "http://parkd"+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.component != "" {
			err = d.checkComponent(tt.component, tt.a.code, req, tt.a)
		} else {
			err = d.check(req, tt.a)
		}
		if err == nil {
			t.Errorf("%s: %s %s answering %v %v passes the check", tt.name, tt.method, tt.path, tt.a, tt.a.header)
		}
	}
}
