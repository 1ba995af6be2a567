package main

// docs/openapi.yaml against the server: the document is valid OpenAPI 3.1,
// it names exactly the routes and methods parkd answers, and it describes
// every kind of answer parkd gives. Real answers from real servers are
// checked with kin-openapi; an answer the document does not describe fails.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/parkd/parkd/dashboard"
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
	status string // the status line after the protocol: "299 Unknown Status Code"
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

// skippedStatus are the codes kin-openapi's ValidateResponse passes
// without a look; then=301 or then=304 gives them.
var skippedStatus = []int{http.StatusMovedPermanently, http.StatusNotModified, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}

// checkOperation validates a against route's operation. A status the
// operation does not list fails; so does a body where it lists none, which
// kin-openapi lets through. An answer with a status kin-openapi skips is
// validated against the response the document gives it, standing under
// 299. A body kin-openapi has no decoder for (the dashboard's files, an
// event stream) is validated here, as a string.
func (d *apiDoc) checkOperation(route *routers.Route, params map[string]string, req *http.Request, a answer, noBody bool) error {
	status := a.code
	if slices.Contains(skippedStatus, a.code) {
		ref := route.Operation.Responses.Status(a.code)
		if ref == nil {
			return fmt.Errorf("the operation lists no %d", a.code)
		}
		stand := *route
		stand.Operation = &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(299, ref))}
		route, status = &stand, 299
	}
	contentType := a.header.Get("Content-Type")
	mediaType, _, _ := strings.Cut(contentType, ";")
	asText := !noBody && contentType != "" && openapi3filter.RegisteredBodyDecoder(strings.TrimSpace(mediaType)) == nil
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 a.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: noBody || asText},
	}
	in.SetBodyBytes(a.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	if asText {
		mt := route.Operation.Responses.Status(status).Value.Content.Get(contentType)
		if mt == nil {
			return fmt.Errorf("the document gives %d no %s body", a.code, contentType)
		}
		if mt.Schema != nil {
			if err := mt.Schema.Value.VisitJSON(string(a.body), openapi3.EnableJSONSchema2020()); err != nil {
				return fmt.Errorf("the %s body does not match the document: %w", contentType, err)
			}
		}
	}
	// kin-openapi decodes the first JSON value and ignores what follows it.
	if !noBody && len(a.body) > 0 && contentType == "application/json" && !json.Valid(a.body) {
		return fmt.Errorf("the body is not one JSON value: %s", clip(a.body))
	}
	if ref := route.Operation.Responses.Status(status); ref != nil && len(ref.Value.Content) == 0 && len(a.body) > 0 {
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
	return answer{resp.StatusCode, resp.Header, b, resp.Status}, err
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
	return answer{resp.StatusCode, resp.Header, b, resp.Status}, err
}

// parked is the one answer of a request parked on a goroutine of its own.
type parked struct {
	id   string
	path string // the park request, query included
	ch   chan result
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
	return p.holdPath(id, parkPath(id, timeout), "waiting")
}

// holdPath parks id with the park request path and waits until it is
// listed in phase: "waiting", or "body" once its body drips.
func (p parker) holdPath(id, path, phase string) parked {
	p.t.Helper()
	h := parked{id, path, make(chan result, 1)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		a, err := fetch(p.ts, http.MethodGet, path, "", "")
		h.ch <- result{a, err}
	}()
	end := time.Now().Add(waitBound)
	for {
		a, err := fetch(p.ts, http.MethodGet, "/api/requests/"+url.PathEscape(id), "", "")
		if err == nil && a.code == http.StatusOK && strings.Contains(string(a.body), `"phase":"`+phase+`"`) {
			return h
		}
		if time.Now().After(end) {
			p.t.Fatalf("%q was never listed in phase %s: last %v, %v", id, phase, a, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// result is the held request's outcome, within waitBound.
func (h parked) result(t *testing.T) result {
	t.Helper()
	select {
	case r := <-h.ch:
		return r
	case <-time.After(waitBound):
		t.Fatalf("parked %q: no answer within %v", h.id, waitBound)
		return result{}
	}
}

// await is the held request's answer, within waitBound.
func (h parked) await(t *testing.T) answer {
	t.Helper()
	r := h.result(t)
	if r.err != nil {
		t.Fatalf("parked %q: %v", h.id, r.err)
	}
	return r.a
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
		concrete := strings.NewReplacer("{connId}", "probe", "{asset}", "app.js").Replace(path)
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

	// The document names the dashboard's files: exactly those it serves.
	var assets []string
	if op := api.doc.Paths.Value("/dashboard/{asset}").Get; op != nil {
		if p := op.Parameters.GetByInAndName("path", "asset"); p != nil {
			for _, v := range p.Schema.Value.Enum {
				assets = append(assets, fmt.Sprint(v))
			}
		}
	}
	slices.Sort(assets)
	if served := slices.Sorted(slices.Values(dashboard.Assets())); !slices.Equal(assets, served) {
		t.Errorf("the dashboard serves %q, the document names %q", served, assets)
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
	raw         string              // when set, these bytes are sent instead, on a connection of their own
	hold        string              // a connId parked before the request
	holdQuery   string              // the held park's parameters after its connId; "" is &timeout=600
	holdDrips   bool                // the request waits until the held park's body drips
	code        int                 // the status the contract gives
	heldCode    int                 // when not 0, the status the held request then answers
	heldWant    func(answer) string // more the held request's answer must show
	heldCut     bool                // the held request's body is cut short: no whole answer
	stillHeld   bool                // the held request is still parked after the answer
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
		// Without -instance, the host name and the port.
		host, err := os.Hostname()
		if err != nil {
			host = "parkd"
		}
		_, port, _ := net.SplitHostPort(ts.addr)
		instance := host + ":" + port
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
			if got := a.header.Get("Parkd-Instance"); got != instance {
				t.Errorf("%s: Parkd-Instance is %q, want %q", tt.name, got, instance)
			}
			api.checkAgainst(t, tt.name, http.MethodGet, "/api/serverStatus", tt.component, tt.code, a)
		}
	})
	t.Run("then and jitter repeat with -seed", func(t *testing.T) {
		t.Parallel()
		api.checkSeeded(t)
	})
	t.Run("event stream", func(t *testing.T) {
		t.Parallel()
		api.checkEvents(t)
	})
	t.Run("cluster mode", func(t *testing.T) {
		t.Parallel()
		api.checkCluster(t)
	})
}

// checkSeeded runs the same draws on two servers started with the same
// -seed: a weighted then and a jitter must come out the same on both, and
// every answer must be one the document describes.
func (d *apiDoc) checkSeeded(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	run := func() (codes []int, timeoutMs int64) {
		cfg := testConfig()
		cfg.seed = 20261202
		ts := startServer(t, cfg)
		for i := range 12 {
			timeout := "0" // answered at once, and parked, in turn
			if i%2 == 1 {
				timeout = "0.01"
			}
			path := park(fmt.Sprintf("seeded-%d", i), "&timeout="+timeout+"&then=200:2,404:1,503:1")
			a, err := fetch(ts, http.MethodGet, path, "", "")
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			d.checkAgainst(t, "GET "+path, http.MethodGet, path, "", 0, a)
			codes = append(codes, a.code)
		}
		newParker(t, &wg, ts).holdPath("seeded-jitter", park("seeded-jitter", "&timeout=600&jitter=100"), "waiting")
		a, err := fetch(ts, http.MethodGet, "/api/requests/seeded-jitter", "", "")
		var r struct{ TimeoutMs int64 }
		if err != nil || json.Unmarshal(a.body, &r) != nil {
			t.Fatalf("GET /api/requests/seeded-jitter: %v, %v", a, err)
		}
		return codes, r.TimeoutMs
	}
	codes, timeoutMs := run()
	again, againMs := run()
	if !slices.Equal(codes, again) || timeoutMs != againMs {
		t.Errorf("the same -seed drew %v and jitter %d ms, then %v and %d ms", codes, timeoutMs, again, againMs)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(codes)))) < 2 {
		t.Errorf("twelve draws of then=200:2,404:1,503:1 all gave %v: the seed draws nothing", codes)
	}
}

// routesInstance is the -instance of checkRoutes' server: a space and a
// letter outside ASCII, which a header may carry.
const routesInstance = "openapi täst 1"

// park is the park request of id with the parameters q after it.
func park(id, q string) string {
	return "/api/request?connId=" + url.QueryEscape(id) + q
}

// bodyIs says whether an answer's body is exactly body.
func bodyIs(body string) func(answer) string {
	return func(a answer) string {
		if string(a.body) != body {
			return "is not " + body
		}
		return ""
	}
}

// padded says whether an answer's body is json followed by spaces, n
// bytes in all.
func padded(json string, n int) func(answer) string {
	return func(a answer) string {
		if len(a.body) != n || !strings.HasPrefix(string(a.body), json) || strings.Trim(string(a.body[len(json):]), " ") != "" {
			return fmt.Sprintf("is not %s padded with spaces to %d bytes (%d bytes)", json, n, len(a.body))
		}
		return ""
	}
}

// contains says whether an answer's body holds every one of parts.
func contains(parts ...string) func(answer) string {
	return func(a answer) string {
		for _, p := range parts {
			if !strings.Contains(string(a.body), p) {
				return "does not hold " + p
			}
		}
		return ""
	}
}

// checkRoutes is the table: every route, every error case of docs/API.md
// sections 1 to 4 and 6 to 8 (the event stream's body aside: checkEvents),
// and the answers of parked requests.
func (d *apiDoc) checkRoutes(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	cfg := testConfig()
	cfg.instance = routesInstance
	ts := startServer(t, cfg)
	p := newParker(t, &wg, ts)
	p.hold("held", "600") // stays parked: the listings show it, a second park of it is a 409
	// Its body drips for ten minutes, a byte every 0.6 s: the listings show
	// it in phase body.
	p.holdPath("dripping", park("dripping", "&timeout=0.05&body=1000&drip=600"), "body")
	endForHistory(t, ts)

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
		{name: "park with POST", method: "POST", path: parkPath("m", "1"), code: 405,
			want: func(a answer) string {
				if a.header.Get("Allow") != "GET" {
					return "has no Allow: GET"
				}
				return ""
			}},
		{name: "park with HEAD", method: "HEAD", path: parkPath("m", "1"), code: 405},

		// Section 6: then, jitter, body and drip on a park.
		{name: "then 503", method: "GET", path: park("s6", "&timeout=0.05&then=503"), code: 503, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 503 at once", method: "GET", path: park("s6", "&timeout=0&then=503"), code: 503, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 204", method: "GET", path: park("s6", "&timeout=0.05&then=204"), code: 204, params: paramsValid, want: bodyIs("")},
		{name: "then 204 at once", method: "GET", path: park("s6", "&timeout=0&then=204"), code: 204, params: paramsValid, want: bodyIs("")},
		{name: "then 204 with drip: nothing drips", method: "GET", path: park("s6", "&timeout=0&then=204&drip=5"), code: 204, params: paramsValid, want: bodyIs("")},
		{name: "then 304", method: "GET", path: park("s6", "&timeout=0.05&then=304"), code: 304, params: paramsValid, want: bodyIs("")},
		{name: "then 301", method: "GET", path: park("s6", "&timeout=0.05&then=301"), code: 301, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 299, a code without a reason phrase", method: "GET", path: park("s6", "&timeout=0.05&then=299"), code: 299, params: paramsValid,
			want: func(a answer) string {
				if a.status != "299 Unknown Status Code" {
					return "has the status line " + a.status
				}
				return ""
			}},
		{name: "then 400", method: "GET", path: park("s6", "&timeout=0.05&then=400"), code: 400, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 405, without Allow", method: "GET", path: park("s6", "&timeout=0.05&then=405"), code: 405, params: paramsValid,
			want: func(a answer) string {
				if a.header.Get("Allow") != "" || string(a.body) != bodyOK {
					return "is not " + bodyOK + " without Allow"
				}
				return ""
			}},
		{name: "then 409", method: "GET", path: park("s6", "&timeout=0.05&then=409"), code: 409, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 500 at the deadline", method: "GET", path: park("s6", "&timeout=0.05&then=500"), code: 500, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 599", method: "GET", path: park("s6", "&timeout=0.05&then=599"), code: 599, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then weighted, one code", method: "GET", path: park("s6", "&timeout=0.05&then=503:2,503:7"), code: 503, params: paramsValid},
		{name: "then of 16 entries", method: "GET", path: park("s6", "&timeout=0&then="+strings.Repeat("202,", 15)+"202"), code: 202, params: paramsValid},
		{name: "then with a weight with leading zeros", method: "GET", path: park("s6", "&timeout=0&then=201:0007"), code: 201, params: paramsValid},
		{name: "body 1000", method: "GET", path: park("s6", "&timeout=0.05&body=1000"), code: 200, params: paramsValid, want: padded(bodyOK, 1000)},
		{name: "body 1048576 at once", method: "GET", path: park("s6", "&timeout=0&body=1048576"), code: 200, params: paramsValid, want: padded(bodyOK, 1<<20)},
		{name: "body 1048576", method: "GET", path: park("s6", "&timeout=0.05&body=1048576"), code: 200, params: paramsValid, want: padded(bodyOK, 1<<20)},
		{name: "body 007", method: "GET", path: park("s6", "&timeout=0&body=007"), code: 200, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "body 0", method: "GET", path: park("s6", "&timeout=0.05&body=0"), code: 200, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then 503 with body 100", method: "GET", path: park("s6", "&timeout=0.05&then=503&body=100"), code: 503, params: paramsValid, want: padded(bodyOK, 100)},
		{name: "drip", method: "GET", path: park("s6", "&timeout=0.05&body=30&drip=0.3"), code: 200, params: paramsValid, want: padded(bodyOK, 30)},
		{name: "drip with then 502", method: "GET", path: park("s6", "&timeout=0.05&then=502&drip=0.2"), code: 502, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "drip at once", method: "GET", path: park("s6", "&timeout=0&drip=0.2"), code: 200, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "jitter", method: "GET", path: park("s6", "&timeout=0.01&jitter=0.05"), code: 200, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "jitter 0", method: "GET", path: park("s6", "&timeout=0&jitter=0"), code: 200, params: paramsValid, want: bodyIs(bodyOK)},
		{name: "then RESET", method: "GET", path: park("s6", "&timeout=1&then=RESET"), code: 400, params: paramsInvalid},
		{name: "then 600", method: "GET", path: park("s6", "&timeout=1&then=600"), code: 400, params: paramsInvalid},
		{name: "then 199", method: "GET", path: park("s6", "&timeout=1&then=199"), code: 400, params: paramsInvalid},
		{name: "then 2000", method: "GET", path: park("s6", "&timeout=1&then=2000"), code: 400, params: paramsInvalid},
		{name: "then weight 0", method: "GET", path: park("s6", "&timeout=1&then=200:0"), code: 400, params: paramsInvalid},
		{name: "then weight 1000001", method: "GET", path: park("s6", "&timeout=1&then=200:1000001"), code: 400, params: paramsInvalid},
		{name: "then with an empty weight", method: "GET", path: park("s6", "&timeout=1&then=reset:"), code: 400, params: paramsInvalid},
		{name: "then empty", method: "GET", path: park("s6", "&timeout=1&then="), code: 400, params: paramsInvalid},
		{name: "then with an empty entry", method: "GET", path: park("s6", "&timeout=1&then=200,,503"), code: 400, params: paramsInvalid},
		{name: "then of 17 entries", method: "GET", path: park("s6", "&timeout=1&then="+strings.Repeat("200,", 16)+"200"), code: 400, params: paramsInvalid},
		{name: "then with a space", method: "GET", path: park("s6", "&timeout=1&then=+200"), code: 400, params: paramsInvalid},
		{name: "then repeated", method: "GET", path: park("s6", "&timeout=1&then=200&then=200"), code: 400},
		{name: "jitter abc", method: "GET", path: park("s6", "&timeout=1&jitter=abc"), code: 400, params: paramsInvalid},
		{name: "jitter -1", method: "GET", path: park("s6", "&timeout=1&jitter=-1"), code: 400, params: paramsInvalid},
		{name: "jitter past the maximum", method: "GET", path: park("s6", "&timeout=1&jitter=3599.001"), code: 400},
		{name: "jitter repeated", method: "GET", path: park("s6", "&timeout=1&jitter=1&jitter=1"), code: 400},
		{name: "body -1", method: "GET", path: park("s6", "&timeout=1&body=-1"), code: 400, params: paramsInvalid},
		{name: "body 1048577", method: "GET", path: park("s6", "&timeout=1&body=1048577"), code: 400, params: paramsInvalid},
		{name: "body 01048577", method: "GET", path: park("s6", "&timeout=1&body=01048577"), code: 400, params: paramsInvalid},
		{name: "body +7", method: "GET", path: park("s6", "&timeout=1&body=%2B7"), code: 400, params: paramsInvalid},
		{name: "body 1.5", method: "GET", path: park("s6", "&timeout=1&body=1.5"), code: 400, params: paramsInvalid},
		{name: "body repeated", method: "GET", path: park("s6", "&timeout=1&body=1&body=1"), code: 400},
		{name: "drip x", method: "GET", path: park("s6", "&timeout=1&drip=x"), code: 400, params: paramsInvalid},
		{name: "drip .5", method: "GET", path: park("s6", "&timeout=1&drip=.5"), code: 400, params: paramsInvalid},
		{name: "drip past the maximum", method: "GET", path: park("s6", "&timeout=1&jitter=3598&drip=1.5"), code: 400},
		{name: "drip repeated", method: "GET", path: park("s6", "&timeout=1&drip=1&drip=2"), code: 400},

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

		// Section 6: a kill's then, and what the listings show.
		{name: "kill then JSON string", method: "PUT", path: "/api/kill", body: `{"connId":"k6-str","then":"503"}`, contentType: "application/json", hold: "k6-str", code: 200, heldCode: 503, heldWant: bodyIs(bodyKilled)},
		{name: "kill then JSON number", method: "PUT", path: "/api/kill", body: `{"connId":"k6-num","then":418}`, contentType: "application/json", hold: "k6-num", code: 200, heldCode: 418, heldWant: bodyIs(bodyKilled)},
		{name: "kill then JSON null", method: "PUT", path: "/api/kill", body: `{"connId":"k6-null","then":null}`, contentType: "application/json", hold: "k6-null", code: 200, heldCode: 500, heldWant: bodyIs(bodyKilled)},
		{name: "kill then form", method: "PUT", path: "/api/kill", body: "connId=k6-form&then=502", contentType: "application/x-www-form-urlencoded", hold: "k6-form", code: 200, heldCode: 502},
		{name: "kill then query", method: "PUT", path: "/api/kill?connId=k6-query&then=200", hold: "k6-query", code: 200, heldCode: 200, heldWant: bodyIs(bodyKilled)},
		{name: "kill then 204", method: "PUT", path: "/api/kill?connId=k6-204&then=204", hold: "k6-204", code: 200, heldCode: 204, heldWant: bodyIs("")},
		{name: "kill the same then twice", method: "PUT", path: "/api/kill?then=503", body: `{"connId":"k6-twice","then":"503"}`, contentType: "application/json", hold: "k6-twice", code: 200, heldCode: 503},
		{name: "kill then weighted, one code", method: "PUT", path: "/api/kill?connId=k6-weights&then=504:1,504:9", hold: "k6-weights", code: 200, heldCode: 504},
		{name: "kill in the braced form carries no then", method: "PUT", path: "/api/kill", body: `{connId=k6-brace&then=503}`, hold: "k6-brace", code: 200, heldCode: 500},
		{name: "kill pads to the park's body", method: "PUT", path: "/api/kill?connId=k6-pad", hold: "k6-pad", holdQuery: "&timeout=600&body=1000", code: 200, heldCode: 500, heldWant: padded(bodyKilled, 1000)},
		{name: "kill then 503 pads to 1048576", method: "PUT", path: "/api/kill?connId=k6-mib&then=503", hold: "k6-mib", holdQuery: "&timeout=600&body=1048576", code: 200, heldCode: 503, heldWant: padded(bodyKilled, 1<<20)},
		{name: "kill a park that has a then", method: "PUT", path: "/api/kill?connId=k6-parkthen", hold: "k6-parkthen", holdQuery: "&timeout=600&then=reset", code: 200, heldCode: 500},
		{name: "kill while the body drips", method: "PUT", path: "/api/kill?connId=k6-drip", hold: "k6-drip", holdQuery: "&timeout=0.05&body=1000&drip=600", holdDrips: true, code: 200, heldCut: true},
		{name: "delete then 503", method: "DELETE", path: "/api/requests/k6-del?then=503", hold: "k6-del", code: 204, heldCode: 503, heldWant: bodyIs(bodyKilled), params: paramsValid},
		{name: "delete then reset while the body drips", method: "DELETE", path: "/api/requests/k6-del-drip?then=reset", hold: "k6-del-drip", holdQuery: "&timeout=0.05&drip=600&body=1000", holdDrips: true, code: 204, heldCut: true, params: paramsValid},
		{name: "kill then JSON true", method: "PUT", path: "/api/kill", body: `{"connId":"k6-bad","then":true}`, contentType: "application/json", hold: "k6-bad", code: 400, stillHeld: true},
		{name: "kill then JSON object", method: "PUT", path: "/api/kill", body: `{"connId":"k6-bad","then":{}}`, contentType: "application/json", code: 400},
		{name: "kill then JSON 5.5", method: "PUT", path: "/api/kill", body: `{"connId":"k6-bad","then":5.5}`, contentType: "application/json", code: 400},
		{name: "kill then JSON empty", method: "PUT", path: "/api/kill", body: `{"connId":"k6-bad","then":""}`, contentType: "application/json", code: 400},
		{name: "kill then form empty", method: "PUT", path: "/api/kill", body: "connId=k6-bad&then=", contentType: "application/x-www-form-urlencoded", code: 400},
		{name: "kill then unknown", method: "PUT", path: "/api/kill?connId=k6-bad&then=zzz", code: 400},
		{name: "kill with two thens", method: "PUT", path: "/api/kill?then=close", body: `{"connId":"k6-two","then":"reset"}`, contentType: "application/json", hold: "k6-two", code: 400, stillHeld: true},
		{name: "kill with a JSON then repeated", method: "PUT", path: "/api/kill", body: `{"connId":"k6-bad","then":"503","then":"504"}`, contentType: "application/json", code: 400},
		{name: "delete then unknown", method: "DELETE", path: "/api/requests/k6-bad?then=zzz", code: 400, params: paramsInvalid},
		{name: "delete then empty", method: "DELETE", path: "/api/requests/k6-bad?then=", code: 400, params: paramsInvalid},
		{name: "delete with two thens", method: "DELETE", path: "/api/requests/k6-del2?then=reset&then=close", hold: "k6-del2", code: 400, stillHeld: true},
		{name: "requests while one drips", method: "GET", path: "/api/requests", code: 200, params: paramsValid, want: contains(`"connId":"dripping"`, `"phase":"body"`)},
		{name: "one request while its body drips", method: "GET", path: "/api/requests/dripping", code: 200, params: paramsValid, want: contains(`"then":"200","phase":"body"`)},
		{name: "serverStatus while one drips", method: "GET", path: "/api/serverStatus", code: 200, params: paramsValid, want: contains(`"dripping":"`)},
		{name: "one request parked with timeout 0 while its body drips", method: "GET", path: "/api/requests/k6-zero", hold: "k6-zero", holdQuery: "&timeout=0&body=1000&drip=600", holdDrips: true,
			code: 200, params: paramsValid, want: contains(`"timeoutMs":0,`, `"phase":"body"`)},
		{name: "one request with then and jitter", method: "GET", path: "/api/requests/listed", hold: "listed", holdQuery: "&timeout=600&then=garbage&jitter=1", code: 200, params: paramsValid,
			want: func(a answer) string {
				var r struct {
					TimeoutMs int64
					Then      string
				}
				if err := json.Unmarshal(a.body, &r); err != nil || r.Then != "garbage" || r.TimeoutMs < 600000 || r.TimeoutMs > 601000 {
					return "does not show then garbage and a timeout from 600 to 601 s"
				}
				return ""
			}},

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

		// Section 7: the history of what ended here (endForHistory and the
		// cases above), and the event stream's refusals (checkEvents reads
		// the stream itself).
		{name: "history", method: "GET", path: "/api/history", code: 200, params: paramsValid, want: historyIs(100, 100, nil)},
		{name: "history, everything kept", method: "GET", path: "/api/history?limit=99999999999999999999999", code: 200, params: paramsValid, want: historyIs(historyParks+2, 10000, nil)},
		{name: "history limit 007", method: "GET", path: "/api/history?limit=007", code: 200, params: paramsValid, want: historyIs(7, 7, nil)},
		{name: "history of one connId", method: "GET", path: "/api/history?connId=h-7", code: 200, params: paramsValid,
			want: historyIs(1, 1, entryIs("h-7", "ok", "200", 200))},
		{name: "history of an escaped connId", method: "GET", path: "/api/history?connId=a%3Bb%C3%A9", code: 200, params: paramsValid,
			want: historyIs(1, 1, entryIs("a;bé", "ok", "200", 200))},
		{name: "history killed", method: "GET", path: "/api/history?outcome=killed", code: 200, params: paramsValid, want: historyIs(1, 10000, outcomeIs("", "killed"))},
		{name: "history abandoned", method: "GET", path: "/api/history?outcome=abandoned", code: 200, params: paramsValid,
			want: historyIs(1, 1, entryIs("gone", "abandoned", "", 0))},
		{name: "history of a reset", method: "GET", path: "/api/history?connId=reset-h&outcome=ok", code: 200, params: paramsValid,
			want: historyIs(1, 1, entryIs("reset-h", "ok", "reset", 0))},
		{name: "history of a kill while the body dripped", method: "GET", path: "/api/history?connId=k6-drip", code: 200, params: paramsValid,
			want: historyIs(1, 1, entryIs("k6-drip", "killed", "close", 200))},
		{name: "history shutdown, none here", method: "GET", path: "/api/history?outcome=shutdown", code: 200, params: paramsValid, want: bodyIs("[]")},
		{name: "history with every filter", method: "GET", path: "/api/history?connId=s6&outcome=ok&limit=3&other=%zz", code: 200, params: paramsValid,
			want: historyIs(3, 3, outcomeIs("s6", "ok"))},
		{name: "history limit 0", method: "GET", path: "/api/history?limit=0", code: 400, params: paramsInvalid},
		{name: "history limit 000", method: "GET", path: "/api/history?limit=000", code: 400, params: paramsInvalid},
		{name: "history limit -1", method: "GET", path: "/api/history?limit=-1", code: 400, params: paramsInvalid},
		{name: "history limit +1", method: "GET", path: "/api/history?limit=%2B1", code: 400, params: paramsInvalid},
		{name: "history limit 1.5", method: "GET", path: "/api/history?limit=1.5", code: 400, params: paramsInvalid},
		{name: "history limit x", method: "GET", path: "/api/history?limit=x", code: 400, params: paramsInvalid},
		{name: "history limit empty", method: "GET", path: "/api/history?limit=", code: 400, params: paramsInvalid},
		{name: "history limit repeated", method: "GET", path: "/api/history?limit=1&limit=1", code: 400},
		{name: "history outcome OK", method: "GET", path: "/api/history?outcome=OK", code: 400, params: paramsInvalid},
		{name: "history outcome rejected", method: "GET", path: "/api/history?outcome=rejected", code: 400, params: paramsInvalid},
		{name: "history outcome empty", method: "GET", path: "/api/history?outcome=", code: 400, params: paramsInvalid},
		{name: "history outcome repeated", method: "GET", path: "/api/history?outcome=ok&outcome=killed", code: 400},
		{name: "history connId empty", method: "GET", path: "/api/history?connId=", code: 400, params: paramsInvalid},
		{name: "history connId of 129 bytes", method: "GET", path: "/api/history?connId=" + long, code: 400, params: paramsInvalid},
		{name: "history connId with a control character", method: "GET", path: "/api/history?connId=a%01b", code: 400, params: paramsInvalid},
		{name: "history connId not UTF-8", method: "GET", path: "/api/history?connId=a%FFb", code: 400},
		{name: "history connId with a bad escape", method: "GET", path: "/api/history?connId=a%zzb", code: 400},
		{name: "history connId repeated", method: "GET", path: "/api/history?connId=a&connId=a", code: 400},
		{name: "history with POST", method: "POST", path: "/api/history", code: 405},
		{name: "history with HEAD", method: "HEAD", path: "/api/history", code: 405},
		{name: "events with POST", method: "POST", path: "/api/events", code: 405},
		{name: "events with OPTIONS", method: "OPTIONS", path: "/api/events", code: 405},

		// Section 8: the dashboard.
		{name: "dashboard", method: "GET", path: "/", code: 200, params: paramsValid, want: bodyIs(string(dashboard.Page()))},
		{name: "dashboard script", method: "GET", path: "/dashboard/app.js", code: 200, params: paramsValid, want: contentTypeIs("text/javascript; charset=utf-8")},
		{name: "dashboard style sheet", method: "GET", path: "/dashboard/style.css", code: 200, params: paramsValid, want: contentTypeIs("text/css; charset=utf-8")},
		{name: "dashboard icon", method: "GET", path: "/dashboard/icon.svg", code: 200, params: paramsValid, want: contentTypeIs("image/svg+xml")},
		{name: "dashboard asset unknown", method: "GET", path: "/dashboard/nope.js", code: 404, params: paramsInvalid},
		{name: "dashboard page as an asset", method: "GET", path: "/dashboard/index.html", code: 404, params: paramsInvalid},
		{name: "dashboard with DELETE", method: "DELETE", path: "/", code: 405},
		{name: "dashboard with HEAD", method: "HEAD", path: "/", code: 405},
		{name: "dashboard asset with POST", method: "POST", path: "/dashboard/app.js", code: 405},
		{name: "dashboard as /index.html", method: "GET", path: "/index.html", code: 404, component: "NotFound"},
		{name: "dashboard/ without an asset", method: "GET", path: "/dashboard/", code: 404, component: "NotFound"},
		{name: "dashboard without a slash", method: "GET", path: "/dashboard", code: 404, component: "NotFound"},

		{name: "unknown path", method: "GET", path: "/nope", code: 404, component: "NotFound"},
		{name: "unknown path with DELETE", method: "DELETE", path: "/nope", code: 404, component: "NotFound"},
		{name: "requests/ without an id", method: "GET", path: "/api/requests/", code: 404, component: "NotFound"},
		{name: "a trailing slash", method: "GET", path: "/api/serverStatus/", code: 404, component: "NotFound"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var held parked
			if tt.hold != "" {
				q, phase := tt.holdQuery, "waiting"
				if q == "" {
					q = "&timeout=600"
				}
				if tt.holdDrips {
					phase = "body"
				}
				held = p.holdPath(tt.hold, park(tt.hold, q), phase)
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
			if got := a.header.Get("Parkd-Instance"); got != routesInstance {
				t.Errorf("%s %s: Parkd-Instance is %q, want %q", tt.method, tt.path, got, routesInstance)
			}
			// Cluster mode's marks are never a standalone parkd's.
			if got := a.header.Get(headerCluster); got != "" {
				t.Errorf("%s %s: %s %q from a parkd alone", tt.method, tt.path, headerCluster, got)
			}
			if strings.HasPrefix(tt.path, "/api/requests") && strings.Contains(string(a.body), `"instance":`) {
				t.Errorf("%s %s: a parkd alone names the instance: %s", tt.method, tt.path, clip(a.body))
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
			switch {
			case tt.heldCode != 0:
				h := held.await(t)
				if h.code != tt.heldCode {
					t.Errorf("the held request %s: got %v, want %d", held.id, h, tt.heldCode)
				}
				if got := h.header.Get("Parkd-Instance"); got != routesInstance {
					t.Errorf("the held request %s: Parkd-Instance is %q, want %q", held.id, got, routesInstance)
				}
				if tt.heldWant != nil {
					if why := tt.heldWant(h); why != "" {
						t.Errorf("the held request %s: the answer %v %s", held.id, h, why)
					}
				}
				d.checkAgainst(t, "the held request", http.MethodGet, held.path, "", 0, h)
			case tt.heldCut:
				// Its headers (a 200) had left: the kill can only cut the body.
				if r := held.result(t); r.err == nil || r.a.code != http.StatusOK {
					t.Errorf("the held request %s: got %v, %v; want a 200 whose body is cut short", held.id, r.a, r.err)
				}
			case tt.stillHeld:
				if a, err := fetch(ts, http.MethodGet, "/api/requests/"+url.PathEscape(held.id), "", ""); err != nil || a.code != http.StatusOK {
					t.Errorf("the held request %s: got %v, %v; want it still parked", held.id, a, err)
				}
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
	padded100 := p.holdPath("beyond-padded", park("beyond-padded", "&timeout=3600&body=100"), "waiting")
	within := p.hold("within", "60")

	ts.cancel()
	a := beyond.await(t)
	if a.code != http.StatusServiceUnavailable || string(a.body) != bodyShuttingDown {
		t.Errorf("parked beyond the grace: got %v, want 503 %s", a, bodyShuttingDown)
	}
	d.checkAgainst(t, "parked beyond the grace", http.MethodGet, parkPath("beyond", "3600"), "", 0, a)
	a = padded100.await(t)
	if a.code != http.StatusServiceUnavailable {
		t.Errorf("parked beyond the grace with body=100: got %v, want 503", a)
	}
	if why := padded(bodyShuttingDown, 100)(a); why != "" {
		t.Errorf("parked beyond the grace with body=100: the answer %v %s", a, why)
	}
	d.checkAgainst(t, "parked beyond the grace with body=100", http.MethodGet, padded100.path, "", 0, a)

	// Both are in the history once their endings are recorded, a moment
	// after their clients saw them.
	const shutdowns = "/api/history?outcome=shutdown"
	beyondShutdown := historyIs(2, 2, func(h historyRecord) string {
		if !strings.HasPrefix(h.ConnID, "beyond") {
			return "was not parked beyond the grace"
		}
		return entryIs(h.ConnID, "shutdown", "503", 503)(h)
	})
	for end := time.Now().Add(waitBound); ; time.Sleep(5 * time.Millisecond) {
		a, err := open.exchange(http.MethodGet, getRequest(shutdowns))
		if err != nil {
			t.Fatalf("history while draining: %v", err)
		}
		if why := beyondShutdown(a); why == "" || time.Now().After(end) {
			if why != "" {
				t.Errorf("history while draining: the answer %v %s", a, why)
			}
			d.checkAgainst(t, "history while draining", http.MethodGet, shutdowns, "", 0, a)
			break
		}
	}

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
	ok := http.Header{"Server": {"parkd"}, "Parkd-Instance": {"host:8080"}, "Content-Type": {"application/json"}}
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
		{"a body the document does not give", "GET", park, "", answer{code: 200, header: ok, body: []byte(`{"status":"okay"}`)}},
		{"an extra member", "GET", park, "", answer{code: 200, header: ok, body: []byte(`{"status":"ok","x":1}`)}},
		{"no Server header", "GET", park, "", answer{code: 200, header: with(ok, "Server", ""), body: []byte(`{"status":"ok"}`)}},
		{"another Server", "GET", park, "", answer{code: 200, header: with(ok, "Server", "nginx"), body: []byte(`{"status":"ok"}`)}},
		{"a status the operation does not list", "GET", "/api/serverStatus", "", answer{code: 418, header: ok, body: []byte(`{"status":"error","error":"x"}`)}},
		{"no Parkd-Instance", "GET", park, "", answer{code: 200, header: with(ok, "Parkd-Instance", ""), body: []byte(`{"status":"ok"}`)}},
		{"a Parkd-Instance with a control character", "GET", "/healthz", "", answer{code: 200, header: with(ok, "Parkd-Instance", "a\x7fb"), body: []byte(`{"status":"ok"}`)}},
		{"an error body on a code then drew", "GET", park, "", answer{code: 418, header: ok, body: []byte(`{"status":"error","error":"x"}`)}},
		{"a then answer with another status", "GET", park, "", answer{code: 502, header: ok, body: []byte(`{"status":"bad gateway"}`)}},
		{"a padded body with more than spaces", "GET", park, "", answer{code: 200, header: ok, body: []byte(`{"status":"ok"}  x`)}},
		{"a 301 with a body the document does not give", "GET", park, "", answer{code: 301, header: ok, body: []byte(`{"status":"moved"}`)}},
		{"a 304 with a body", "GET", park, "", answer{code: 304, header: ok, body: []byte(`{"status":"ok"}`)}},
		{"a 304 without Parkd-Instance", "GET", park, "", answer{code: 304, header: with(ok, "Parkd-Instance", "")}},
		{"a 204 with a body", "GET", park, "", answer{code: 204, header: ok, body: []byte(`{"status":"ok"}`)}},
		{"a 304 where the operation lists none", "GET", "/healthz", "", answer{code: 304, header: ok}},
		{"not JSON", "GET", park, "", answer{code: 200, header: with(ok, "Content-Type", "text/html"), body: []byte(`<p>ok</p>`)}},
		{"an error without its sentence", "GET", park, "", answer{code: 400, header: ok, body: []byte(`{"status":"error"}`)}},
		{"a Retry-After other than 1", "GET", park, "", answer{code: 503, header: with(ok, "Retry-After", "5"), body: []byte(`{"status":"error","error":"full"}`)}},
		{"serverStatus showing 0", "GET", "/api/serverStatus", "", answer{code: 200, header: ok, body: []byte(`{"12":"0"}`)}},
		{"serverStatus with a number", "GET", "/api/serverStatus", "", answer{code: 200, header: ok, body: []byte(`{"12":7}`)}},
		{"serverStatus with a control character in an id", "GET", "/api/serverStatus", "", answer{code: 200, header: ok, body: []byte(`{"a\u0001":"7"}`)}},
		{"a resource without remoteAddr", "GET", "/api/requests", "", answer{code: 200, header: ok, body: []byte(
			`[{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35.146Z"}]`)}},
		{"a deadline without milliseconds", "GET", "/api/requests/1", "", answer{code: 200, header: ok, body: []byte(
			`{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35Z","remoteAddr":"127.0.0.1:1","then":"200","phase":"waiting","bytesSent":0}`)}},
		{"a resource without phase", "GET", "/api/requests/1", "", answer{code: 200, header: ok, body: []byte(
			`{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35.146Z","remoteAddr":"127.0.0.1:1","then":"200","bytesSent":0}`)}},
		{"a resource in another phase", "GET", "/api/requests/1", "", answer{code: 200, header: ok, body: []byte(
			`{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35.146Z","remoteAddr":"127.0.0.1:1","then":"200","phase":"sending","bytesSent":0}`)}},
		{"a resource whose then is not an action", "GET", "/api/requests/1", "", answer{code: 200, header: ok, body: []byte(
			`{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35.146Z","remoteAddr":"127.0.0.1:1","then":"200:1","phase":"waiting","bytesSent":0}`)}},
		{"a body on 204", "DELETE", "/api/requests/1", "", answer{code: 204, header: ok, body: []byte(`{}`)}},
		{"a 405 without Allow", "GET", "/api/kill", "", answer{code: 405, header: ok, body: []byte(`{"status":"method not allowed","error":"x"}`)}},
		{"a 405 with a wrong Allow", "GET", "/api/kill", "", answer{code: 405, header: with(ok, "Allow", "GET, PUT"), body: []byte(`{"status":"method not allowed","error":"x"}`)}},
		{"metrics as JSON", "GET", "/metrics", "", answer{code: 200, header: ok, body: []byte(`{}`)}},
		{"metrics without parkd's", "GET", "/metrics", "", answer{code: 200, header: with(ok, "Content-Type", "text/plain"), body: []byte("# TYPE go_goroutines gauge\n")}},
		{"a 404 with another status", "GET", "/nope", "NotFound", answer{code: 404, header: ok, body: []byte(`{"status":"error","error":"x"}`)}},
		{"a history entry without instance", "GET", "/api/history", "", answer{code: 200, header: ok, body: []byte(
			`[{"connId":"1","outcome":"ok","then":"200","code":200,"timeoutMs":10,"startedAt":"2026-11-27T06:16:35.136Z","endedAt":"2026-11-27T06:16:35.146Z","durationMs":10,"bytesSent":15,"remoteAddr":"127.0.0.1:1"}]`)}},
		{"a history entry with another outcome", "GET", "/api/history", "", answer{code: 200, header: ok, body: []byte(
			`[{"connId":"1","outcome":"rejected","then":"200","code":200,"timeoutMs":10,"startedAt":"2026-11-27T06:16:35.136Z","endedAt":"2026-11-27T06:16:35.146Z","durationMs":10,"bytesSent":15,"remoteAddr":"127.0.0.1:1","instance":"a:1"}]`)}},
		{"a history entry whose then is empty", "GET", "/api/history", "", answer{code: 200, header: ok, body: []byte(
			`[{"connId":"1","outcome":"abandoned","then":"","code":null,"timeoutMs":10,"startedAt":"2026-11-27T06:16:35.136Z","endedAt":"2026-11-27T06:16:35.146Z","durationMs":10,"bytesSent":0,"remoteAddr":"127.0.0.1:1","instance":"a:1"}]`)}},
		{"a history entry whose code is text", "GET", "/api/history", "", answer{code: 200, header: ok, body: []byte(
			`[{"connId":"1","outcome":"ok","then":"200","code":"200","timeoutMs":10,"startedAt":"2026-11-27T06:16:35.136Z","endedAt":"2026-11-27T06:16:35.146Z","durationMs":10,"bytesSent":15,"remoteAddr":"127.0.0.1:1","instance":"a:1"}]`)}},
		{"a history entry with an id", "GET", "/api/history", "", answer{code: 200, header: ok, body: []byte(
			`[{"id":"7","connId":"1","outcome":"ok","then":"200","code":200,"timeoutMs":10,"startedAt":"2026-11-27T06:16:35.136Z","endedAt":"2026-11-27T06:16:35.146Z","durationMs":10,"bytesSent":15,"remoteAddr":"127.0.0.1:1","instance":"a:1"}]`)}},
		{"a history that is an object", "GET", "/api/history", "", answer{code: 200, header: ok, body: []byte(`{}`)}},
		{"a page without its policy", "GET", "/", "", answer{code: 200, header: with(ok, "Content-Type", "text/html; charset=utf-8", "X-Content-Type-Options", "nosniff"), body: []byte("<!doctype html>")}},
		{"a page as JSON", "GET", "/", "", answer{code: 200, header: with(ok, "Content-Security-Policy", dashboard.ContentSecurityPolicy, "X-Content-Type-Options", "nosniff"), body: []byte(`{}`)}},
		{"a page without a charset", "GET", "/", "", answer{code: 200, header: with(ok, "Content-Type", "text/html", "Content-Security-Policy", dashboard.ContentSecurityPolicy, "X-Content-Type-Options", "nosniff"), body: []byte("<!doctype html>")}},
		{"a script that may be sniffed", "GET", "/dashboard/app.js", "", answer{code: 200, header: with(ok, "Content-Type", "text/javascript; charset=utf-8", "Cache-Control", "no-cache"), body: []byte("x")}},
		{"an icon that is not SVG", "GET", "/dashboard/icon.svg", "", answer{code: 200, header: with(ok, "Content-Type", "image/svg+xml", "Cache-Control", "no-cache", "X-Content-Type-Options", "nosniff"), body: []byte("PNG")}},
		{"an asset as HTML", "GET", "/dashboard/app.js", "", answer{code: 200, header: with(ok, "Content-Type", "text/html; charset=utf-8", "Cache-Control", "no-cache", "X-Content-Type-Options", "nosniff"), body: []byte("<p>")}},
		{"a stream without Cache-Control", "GET", "/api/events", "", answer{code: 200, header: with(ok, "Content-Type", "text/event-stream", "X-Accel-Buffering", "no", "Connection", "close"), body: []byte("retry: 1000\n\nevent: snapshot\ndata: []\n\n")}},
		{"a stream kept alive", "GET", "/api/events", "", answer{code: 200, header: with(ok, "Content-Type", "text/event-stream", "Cache-Control", "no-cache", "X-Accel-Buffering", "no", "Connection", "keep-alive"), body: []byte("retry: 1000\n\nevent: snapshot\ndata: []\n\n")}},
		{"a stream without its retry", "GET", "/api/events", "", answer{code: 200, header: with(ok, "Content-Type", "text/event-stream", "Cache-Control", "no-cache", "X-Accel-Buffering", "no", "Connection", "close"), body: []byte("event: snapshot\ndata: []\n\n")}},
		{"a stream whose snapshot has an id", "GET", "/api/events", "", answer{code: 200, header: with(ok, "Content-Type", "text/event-stream", "Cache-Control", "no-cache", "X-Accel-Buffering", "no", "Connection", "close"), body: []byte("retry: 1000\n\nid: 1\nevent: snapshot\ndata: []\n\n")}},
		{"a stream with another event", "GET", "/api/events", "", answer{code: 200, header: with(ok, "Content-Type", "text/event-stream", "Cache-Control", "no-cache", "X-Accel-Buffering", "no", "Connection", "close"), body: []byte("retry: 1000\n\nevent: snapshot\ndata: []\n\nid: 2\nevent: killed\ndata: {}\n\n")}},
		{"a missing asset with another status", "GET", "/dashboard/nope.js", "", answer{code: 404, header: ok, body: []byte(`{"status":"error","error":"x"}`)}},
		{"a Parkd-Cluster other than ok or degraded", "GET", "/api/serverStatus", "", answer{code: 200, header: with(ok, "Parkd-Cluster", "partial"), body: []byte(`{}`)}},
		{"a resource with an empty instance", "GET", "/api/requests/1", "", answer{code: 200, header: ok, body: []byte(
			`{"connId":"1","timeoutMs":10,"remainingMs":5,"startedAt":"2026-11-27T06:16:35.136Z","deadline":"2026-11-27T06:16:35.146Z","remoteAddr":"127.0.0.1:1","then":"200","phase":"waiting","bytesSent":0,"instance":""}`)}},
		{"a kill's 503 with another sentence", "PUT", "/api/kill", "", answer{code: 503, header: ok, body: []byte(`{"status":"error","error":"try later"}`)}},
		{"a kill's 503 with a Retry-After other than 1", "PUT", "/api/kill", "", answer{code: 503, header: with(ok, "Retry-After", "5"), body: []byte(`{"status":"error","error":"cluster store unreachable"}`)}},
		{"a GET's 503 naming an instance", "GET", "/api/requests/1", "", answer{code: 503, header: ok, body: []byte(`{"status":"error","error":"instance b unreachable"}`)}},
		{"a readyz 503 that says degraded", "GET", "/readyz", "", answer{code: 503, header: ok, body: []byte(`{"status":"degraded"}`)}},
		{"a 503 on a listing", "GET", "/api/serverStatus", "", answer{code: 503, header: ok, body: []byte(`{"status":"error","error":"cluster store unreachable"}`)}},
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

// historyParks is how many parks endForHistory answers at once: more than
// a history answer gives by default.
const historyParks = 101

// endForHistory ends requests for checkRoutes' history cases: historyParks
// parks answered at once (h-0, h-1, ...), one whose client leaves (gone)
// and one reset at its deadline (reset-h). It returns once the last two are
// in the history: their endings are recorded after the client's side has
// seen them.
func endForHistory(t *testing.T, ts *testServer) {
	t.Helper()
	for i := range historyParks {
		path := parkPath(fmt.Sprintf("h-%d", i), "0")
		if a, err := fetch(ts, http.MethodGet, path, "", ""); err != nil || a.code != http.StatusOK {
			t.Fatalf("GET %s: %v, %v", path, a, err)
		}
	}
	gone := dialKept(t, ts.addr)
	if _, err := io.WriteString(gone.c, getRequest(parkPath("gone", "600"))); err != nil {
		t.Fatalf("parking gone: %v", err)
	}
	awaitBody(t, ts, "/api/requests/gone", `"connId":"gone"`)
	gone.c.Close()
	if a, err := dialKept(t, ts.addr).exchange(http.MethodGet, getRequest(park("reset-h", "&timeout=0&then=reset"))); err == nil {
		t.Fatalf("then=reset answered %v", a)
	}
	awaitBody(t, ts, "/api/history?connId=gone", `"outcome":"abandoned"`)
	awaitBody(t, ts, "/api/history?connId=reset-h", `"then":"reset"`)
}

// awaitBody asks for path until the answer holds part, within waitBound.
func awaitBody(t *testing.T, ts *testServer, path, part string) {
	t.Helper()
	end := time.Now().Add(waitBound)
	for {
		a, err := fetch(ts, http.MethodGet, path, "", "")
		if err == nil && strings.Contains(string(a.body), part) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("GET %s never held %s: last %v, %v", path, part, a, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// historyRecord is what the history cases look at in an entry; the
// document checks the rest.
type historyRecord struct {
	ConnID  string  `json:"connId"`
	Outcome string  `json:"outcome"`
	Then    *string `json:"then"`
	Code    *int    `json:"code"`
}

// historyIs says whether an answer is a history array of from to upto
// entries, each of which every (when not nil) accepts.
func historyIs(from, upto int, every func(historyRecord) string) func(answer) string {
	return func(a answer) string {
		var hs []historyRecord
		if err := json.Unmarshal(a.body, &hs); err != nil {
			return "is not a history array: " + err.Error()
		}
		if len(hs) < from || len(hs) > upto {
			return fmt.Sprintf("has %d entries, want %d to %d", len(hs), from, upto)
		}
		for i, h := range hs {
			if every == nil {
				break
			}
			if why := every(h); why != "" {
				return fmt.Sprintf("has entry %d (%s), which %s", i, h.ConnID, why)
			}
		}
		return ""
	}
}

// outcomeIs says whether an entry has outcome, and connID unless it is "".
func outcomeIs(connID, outcome string) func(historyRecord) string {
	return func(h historyRecord) string {
		if h.Outcome != outcome || connID != "" && h.ConnID != connID {
			return fmt.Sprintf("is %s %s, want %s %s", h.ConnID, h.Outcome, connID, outcome)
		}
		return ""
	}
}

// entryIs says whether an entry is connID's, with outcome, then ("" for
// null) and code (0 for null).
func entryIs(connID, outcome, then string, code int) func(historyRecord) string {
	return func(h historyRecord) string {
		got, want := "null", "null"
		if h.Then != nil {
			got = *h.Then
		}
		if then != "" {
			want = then
		}
		got, want = got+" code ", want+" code "
		if h.Code != nil {
			got += fmt.Sprint(*h.Code)
		} else {
			got += "null"
		}
		if code != 0 {
			want += fmt.Sprint(code)
		} else {
			want += "null"
		}
		if why := outcomeIs(connID, outcome)(h); why != "" || got != want {
			return fmt.Sprintf("is %s %s then %s, want %s %s then %s", h.ConnID, h.Outcome, got, connID, outcome, want)
		}
		return ""
	}
}

// contentTypeIs says whether an answer's Content-Type is exactly ct.
func contentTypeIs(ct string) func(answer) string {
	return func(a answer) string {
		if got := a.header.Get("Content-Type"); got != ct {
			return "has the Content-Type " + got + ", want " + ct
		}
		return ""
	}
}

// eventStream is a client of GET /api/events on a connection of its own,
// read as raw bytes: the head as sent (net/http drops Connection: close),
// then the chunked body.
type eventStream struct {
	c      net.Conn
	code   int
	header http.Header
	body   *bufio.Reader
	read   []byte // the body read so far
}

// sseBlock is one block of an event stream: an event's fields, or the
// opening retry.
type sseBlock struct{ retry, id, event, data string }

// openEvents asks addr for the event stream, with Last-Event-ID lastID
// unless it is "", and reads the answer's head.
func openEvents(t *testing.T, addr, lastID string) *eventStream {
	t.Helper()
	k := dialKept(t, addr)
	var extra []string
	if lastID != "" {
		extra = append(extra, "Last-Event-ID: "+lastID+"\r\n")
	}
	if _, err := io.WriteString(k.c, getRequest("/api/events", extra...)); err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	tp := textproto.NewReader(k.br)
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	s := &eventStream{c: k.c}
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &s.code); err != nil {
		t.Fatalf("GET /api/events: the status line %q", line)
	}
	head, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	s.header = http.Header(head)
	if s.code != http.StatusOK || s.header.Get("Transfer-Encoding") != "chunked" {
		t.Fatalf("GET /api/events: %s, %v; want a chunked 200", line, s.header)
	}
	s.body = bufio.NewReader(httputil.NewChunkedReader(k.br))
	return s
}

// next reads the next block that is not a comment, within waitBound.
func (s *eventStream) next(t *testing.T) sseBlock {
	t.Helper()
	if err := s.c.SetReadDeadline(time.Now().Add(waitBound)); err != nil {
		t.Fatal(err)
	}
	var b sseBlock
	for {
		line, err := s.body.ReadString('\n')
		s.read = append(s.read, line...)
		if err != nil {
			t.Fatalf("reading the event stream: %v, after %s", err, clip(s.read))
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ": ")
		switch {
		case line == "":
			if b != (sseBlock{}) {
				return b
			}
		case strings.HasPrefix(line, ":"): // a comment, such as the keep-alive
		case field == "retry":
			b.retry = value
		case field == "id":
			b.id = value
		case field == "event":
			b.event = value
		case field == "data":
			b.data = value
		default:
			t.Fatalf("an event stream line %q", line)
		}
	}
}

// jsonSchema is the schema of the JSON body the document gives GET path
// answering code.
func (d *apiDoc) jsonSchema(t *testing.T, path string, code int) *openapi3.Schema {
	t.Helper()
	if item := d.doc.Paths.Value(path); item != nil && item.Get != nil {
		if ref := item.Get.Responses.Status(code); ref != nil {
			if mt := ref.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
				return mt.Schema.Value
			}
		}
	}
	t.Fatalf("the document gives GET %s no JSON %d", path, code)
	return nil
}

// checkData fails t unless an event's data is one JSON value that schema
// accepts.
func checkData(t *testing.T, what string, schema *openapi3.Schema, b sseBlock) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(b.data), &v); err != nil {
		t.Errorf("%s: the data %s is not JSON: %v", what, clip([]byte(b.data)), err)
		return
	}
	if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("%s: the document does not describe the data %s:\n%v", what, clip([]byte(b.data)), err)
	}
}

// checkEvents reads the event stream of a server of its own: the head,
// the snapshot (its data the array of GET /api/requests), the replay of
// an ending after Last-Event-ID, and a live parked and finished event,
// each checked against the document; then the 503 a new stream gets once
// the server's event hub has closed, as it does when a shutdown has
// drained.
func (d *apiDoc) checkEvents(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	ts := startServer(t, testConfig())
	p := newParker(t, &wg, ts)
	p.hold("ev-held", "600")
	if a, err := fetch(ts, http.MethodGet, parkPath("ev-done", "0"), "", ""); err != nil || a.code != http.StatusOK {
		t.Fatalf("parking ev-done: %v, %v", a, err)
	}
	listing := d.jsonSchema(t, "/api/requests", http.StatusOK)
	entries := d.jsonSchema(t, "/api/history", http.StatusOK)
	if entries.Items == nil {
		t.Fatal("the document's history is not an array")
	}
	entry := entries.Items.Value
	resource := d.jsonSchema(t, "/api/requests/{connId}", http.StatusOK)
	stream := func(what string, s *eventStream) {
		t.Helper()
		d.checkAgainst(t, what, http.MethodGet, "/api/events", "", 0, answer{code: s.code, header: s.header, body: s.read})
	}

	// "0" comes before every id: the replay is every ending kept, ev-done's.
	s := openEvents(t, ts.addr, "0")
	if b := s.next(t); b != (sseBlock{retry: "1000"}) {
		t.Errorf("the stream opens with %+v, want retry: 1000 alone", b)
	}
	snap := s.next(t)
	if snap.event != "snapshot" || snap.id != "" || !strings.Contains(snap.data, `"connId":"ev-held"`) {
		t.Errorf("the first event is %+v, want a snapshot without an id, listing ev-held", snap)
	}
	checkData(t, "the snapshot", listing, snap)
	replay := s.next(t)
	if replay.event != "finished" || replay.id == "" || !strings.Contains(replay.data, `"connId":"ev-done"`) {
		t.Errorf("after the snapshot, %+v; want the replay of ev-done's ending", replay)
	}
	checkData(t, "the replayed ending", entry, replay)
	stream("the stream's head, snapshot and replay", s)

	live := p.hold("ev-live", "600")
	parked := s.next(t)
	for parked.event == "parked" && strings.Contains(parked.data, `"connId":"ev-held"`) {
		parked = s.next(t) // ev-held may have been published after the stream began
	}
	if parked.event != "parked" || parked.id == "" || !strings.Contains(parked.data, `"connId":"ev-live"`) {
		t.Errorf("after parking ev-live, %+v; want its parked event", parked)
	}
	checkData(t, "the parked event", resource, parked)
	if a, err := fetch(ts, http.MethodDelete, "/api/requests/ev-live", "", ""); err != nil || a.code != http.StatusNoContent {
		t.Fatalf("DELETE /api/requests/ev-live: %v, %v", a, err)
	}
	live.await(t)
	ended := s.next(t)
	if ended.event != "finished" || ended.id == "" || !strings.Contains(ended.data, `"connId":"ev-live","outcome":"killed"`) {
		t.Errorf("after killing ev-live, %+v; want its finished event", ended)
	}
	checkData(t, "the finished event", entry, ended)
	stream("the stream with live events", s)
	s.c.Close()

	ts.s.hub.Close() // what serve does once the drain is over
	a, err := fetch(ts, http.MethodGet, "/api/events", "", "")
	if err != nil || a.code != http.StatusServiceUnavailable || string(a.body) != bodyShuttingDown {
		t.Errorf("GET /api/events once the hub has closed: %v, %v; want 503 %s", a, err, bodyShuttingDown)
	}
	d.checkAgainst(t, "GET /api/events once the hub has closed", http.MethodGet, "/api/events", "", 0, a)
}

// The instances of checkCluster: a space, which a name and a Redis key may
// hold.
const (
	clusterA = "openapi a"
	clusterB = "openapi b"
)

// clusterEventID is the form of an event id in cluster mode: a Redis
// stream id.
var clusterEventID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// clusterAsk is one request to an instance of checkCluster's cluster.
type clusterAsk struct {
	what               string
	node               *clusterNode
	method, path, body string // a body is sent as application/json
	code               int
	cluster            string // the Parkd-Cluster the answer must carry; "" for none
	retryAfter         bool   // it must carry Retry-After: 1
	want               func(answer) string
}

// ask sends q, checks its status, Parkd-Instance, Parkd-Cluster and
// Retry-After, and checks the answer against the document.
func (d *apiDoc) ask(t *testing.T, q clusterAsk) answer {
	t.Helper()
	ct := ""
	if q.body != "" {
		ct = "application/json"
	}
	a, err := fetch(q.node.testServer, q.method, q.path, q.body, ct)
	if err != nil {
		t.Fatalf("%s: %s %s on %s: %v", q.what, q.method, q.path, q.node.name, err)
	}
	if a.code != q.code {
		t.Errorf("%s: %s %s on %s: got %v, want %d", q.what, q.method, q.path, q.node.name, a, q.code)
	}
	if got := a.header.Get("Parkd-Instance"); got != q.node.name {
		t.Errorf("%s: Parkd-Instance is %q, want %q", q.what, got, q.node.name)
	}
	if got := a.header.Get(headerCluster); got != q.cluster {
		t.Errorf("%s: %s is %q, want %q", q.what, headerCluster, got, q.cluster)
	}
	// kin-openapi lets a header the document does not list through.
	if q.cluster != "" && !d.listsHeader(q.method, q.path, a.code, headerCluster) {
		t.Errorf("%s: the document does not list %s on the %d of %s %s", q.what, headerCluster, a.code, q.method, q.path)
	}
	if got := a.header.Get("Retry-After"); q.retryAfter != (got == "1") {
		t.Errorf("%s: Retry-After is %q, want it only with a store refusal", q.what, got)
	}
	if q.want != nil {
		if why := q.want(a); why != "" {
			t.Errorf("%s: the answer %v %s", q.what, a, why)
		}
	}
	d.checkAgainst(t, q.what, q.method, q.path, "", 0, a)
	return a
}

// listsHeader says whether the document lists header on the answer code
// of method path.
func (d *apiDoc) listsHeader(method, path string, code int, header string) bool {
	req, err := http.NewRequest(method, "http://parkd"+path, nil)
	if err != nil {
		return false
	}
	route, _, err := d.router.FindRoute(req)
	if err != nil {
		return false
	}
	ref := route.Operation.Responses.Status(code)
	return ref != nil && ref.Value.Headers[header] != nil
}

// instancesAre says whether an answer is a resource listing (or one
// resource) whose requests are exactly want, connId to instance.
func instancesAre(want map[string]string) func(answer) string {
	return func(a answer) string {
		type resource struct {
			ConnID   string  `json:"connId"`
			Instance *string `json:"instance"`
		}
		var list []resource
		if err := json.Unmarshal(a.body, &list); err != nil {
			var one resource
			if err := json.Unmarshal(a.body, &one); err != nil {
				return "is not a resource listing: " + err.Error()
			}
			list = []resource{one}
		}
		got := map[string]string{}
		for _, r := range list {
			if r.Instance == nil {
				return "lists " + r.ConnID + " without instance"
			}
			got[r.ConnID] = *r.Instance
		}
		if !maps.Equal(got, want) {
			return fmt.Sprintf("lists %v, want %v", got, want)
		}
		return ""
	}
}

// storeRefusal is the body of an answer refused because Redis cannot be
// reached.
const storeRefusal = `{"status":"error","error":"cluster store unreachable"}`

// checkCluster runs two instances of one cluster against a real
// redis-server and checks their answers of section 9 against the document:
// listings that hold both instances' requests, another instance's request,
// a kill and a DELETE passed to the instance holding the request, a 409
// across instances, the cluster's history and events (an id written on one
// instance resumes a stream on the other); then, with the redis-server
// stopped (SIGSTOP), the degraded answers; and after SIGCONT, the whole
// cluster again.
func (d *apiDoc) checkCluster(t *testing.T) {
	r := startRedis(t, redisOptions{})
	// sh's kill builtin: syscall has no SIGSTOP on every system this file
	// is built for.
	sh := needProgram(t, "sh", "dash")
	signal := func(sig string) {
		t.Helper()
		if out, err := exec.Command(sh, "-c", `kill -s "$1" "$2"`, "sh", sig, strconv.Itoa(r.pid())).CombinedOutput(); err != nil {
			t.Fatalf("kill -s %s redis-server: %v %s", sig, err, out)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	a := startClusterNode(t, clusterConfigFor(r, clusterA))
	b := startClusterNode(t, clusterConfigFor(r, clusterB))
	pa, pb := newParker(t, &wg, a.testServer), newParker(t, &wg, b.testServer)
	pa.hold("c-a", "600")
	pb.hold("c-b", "600")
	both := map[string]string{"c-a": clusterA, "c-b": clusterB}

	d.ask(t, clusterAsk{what: "a listing on a", node: a, method: "GET", path: "/api/requests", code: 200, cluster: "ok", want: instancesAre(both)})
	d.ask(t, clusterAsk{what: "serverStatus on b", node: b, method: "GET", path: "/api/serverStatus", code: 200, cluster: "ok", want: contains(`"c-a":"`, `"c-b":"`)})
	d.ask(t, clusterAsk{what: "b's request on a", node: a, method: "GET", path: "/api/requests/c-b", code: 200, cluster: "ok", want: instancesAre(map[string]string{"c-b": clusterB})})
	d.ask(t, clusterAsk{what: "a request no instance holds", node: a, method: "GET", path: "/api/requests/nobody", code: 404, cluster: "ok"})
	d.ask(t, clusterAsk{what: "a park on a of b's connId", node: a, method: "GET", path: parkPath("c-b", "1"), code: 409, want: bodyIs(`{"status":"error","error":"connId c-b is already running"}`)})

	// A kill and a DELETE on the instance that does not hold the request.
	held := pb.hold("k-b", "600")
	d.ask(t, clusterAsk{what: "a kill on a of b's request", node: a, method: "PUT", path: "/api/kill", body: `{"connId":"k-b"}`, code: 200, want: bodyIs(bodyOK)})
	h := held.await(t)
	if h.code != http.StatusInternalServerError || string(h.body) != bodyKilled || h.header.Get("Parkd-Instance") != clusterB {
		t.Errorf("b's request killed on a: got %v from %q, want 500 %s from %s", h, h.header.Get("Parkd-Instance"), bodyKilled, clusterB)
	}
	d.checkAgainst(t, "b's request killed on a", http.MethodGet, held.path, "", 0, h)
	held = pa.hold("d-a", "600")
	d.ask(t, clusterAsk{what: "a DELETE on b of a's request", node: b, method: "DELETE", path: "/api/requests/d-a?then=503", code: 204, want: bodyIs("")})
	h = held.await(t)
	if h.code != http.StatusServiceUnavailable || string(h.body) != bodyKilled || h.header.Get("Parkd-Instance") != clusterA {
		t.Errorf("a's request deleted on b: got %v from %q, want 503 %s from %s", h, h.header.Get("Parkd-Instance"), bodyKilled, clusterA)
	}
	d.checkAgainst(t, "a's request deleted on b", http.MethodGet, held.path, "", 0, h)
	d.ask(t, clusterAsk{what: "a kill no instance can do", node: b, method: "PUT", path: "/api/kill?connId=nobody", code: 400, want: bodyIs(`{"status":"invalid connection Id : nobody"}`)})
	d.ask(t, clusterAsk{what: "a DELETE no instance can do", node: a, method: "DELETE", path: "/api/requests/nobody", code: 404})

	// An instance that is live but never answers a kill: one registered in
	// Redis by hand (the keys docs/cluster.md lists), with no parkd behind
	// it, as a frozen instance would look.
	const ghost = "openapi ghost"
	r.doT(t, "SET", "parkd:inst:"+ghost, "live", "PX", "60000")
	r.doT(t, "SADD", "parkd:instances", ghost)
	r.doT(t, "HSET", "parkd:parked:"+ghost, "g-1", fmt.Sprintf("1|%d|600000|0|0|15|200|127.0.0.1:1", time.Now().UnixMilli()))
	unreachable := bodyIs(`{"status":"error","error":"instance ` + ghost + ` unreachable"}`)
	d.ask(t, clusterAsk{what: "the silent instance's request", node: a, method: "GET", path: "/api/requests/g-1", code: 200, cluster: "ok", want: instancesAre(map[string]string{"g-1": ghost})})
	d.ask(t, clusterAsk{what: "a kill of the silent instance's request", node: a, method: "PUT", path: "/api/kill?connId=g-1", code: 503, want: unreachable})
	d.ask(t, clusterAsk{what: "a DELETE of the silent instance's request", node: b, method: "DELETE", path: "/api/requests/g-1?then=reset", code: 503, want: unreachable})
	r.doT(t, "DEL", "parkd:inst:"+ghost, "parkd:parked:"+ghost)
	r.doT(t, "SREM", "parkd:instances", ghost)

	// The history is the cluster's: both endings, on either instance.
	awaitBody(t, b.testServer, "/api/history?connId=d-a", `"instance":"`+clusterA+`"`)
	d.ask(t, clusterAsk{what: "the history on b", node: b, method: "GET", path: "/api/history", code: 200, cluster: "ok",
		want: contains(`"connId":"k-b","outcome":"killed"`, `"instance":"`+clusterA+`"`, `"instance":"`+clusterB+`"`)})

	d.checkClusterEvents(t, a, b, pb)

	// Redis stopped: a answers from what it holds alone. The first listing
	// to find Redis silent (within a second) turns it degraded.
	signal("STOP")
	t.Cleanup(func() { signal("CONT") }) // before the instances leave the cluster through it
	for end := time.Now().Add(waitBound); ; time.Sleep(20 * time.Millisecond) {
		st, err := fetch(a.testServer, http.MethodGet, "/api/serverStatus", "", "")
		if err == nil && st.header.Get(headerCluster) == "degraded" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("a is not degraded %v after Redis stopped: %v, %v", waitBound, st, err)
		}
	}
	own := map[string]string{"c-a": clusterA}
	d.ask(t, clusterAsk{what: "a park, Redis stopped", node: a, method: "GET", path: parkPath("new", "1"), code: 503, retryAfter: true, want: bodyIs(storeRefusal)})
	d.ask(t, clusterAsk{what: "a kill of b's request, Redis stopped", node: a, method: "PUT", path: "/api/kill?connId=c-b", code: 503, retryAfter: true, want: bodyIs(storeRefusal)})
	d.ask(t, clusterAsk{what: "a kill of an unknown id, Redis stopped", node: a, method: "PUT", path: "/api/kill", body: `{"connId":"nobody"}`, code: 503, retryAfter: true, want: bodyIs(storeRefusal)})
	d.ask(t, clusterAsk{what: "a GET of an unknown id, Redis stopped", node: a, method: "GET", path: "/api/requests/nobody", code: 503, cluster: "degraded", retryAfter: true, want: bodyIs(storeRefusal)})
	d.ask(t, clusterAsk{what: "a DELETE of b's request, Redis stopped", node: a, method: "DELETE", path: "/api/requests/c-b", code: 503, retryAfter: true, want: bodyIs(storeRefusal)})
	d.ask(t, clusterAsk{what: "a's listing, Redis stopped", node: a, method: "GET", path: "/api/requests", code: 200, cluster: "degraded", want: instancesAre(own)})
	d.ask(t, clusterAsk{what: "a's serverStatus, Redis stopped", node: a, method: "GET", path: "/api/serverStatus", code: 200, cluster: "degraded", want: func(a answer) string {
		if !strings.HasPrefix(string(a.body), `{"c-a":"`) || strings.Count(string(a.body), ":") != 1 {
			return "does not list a's c-a alone"
		}
		return ""
	}})
	d.ask(t, clusterAsk{what: "a's own request, Redis stopped", node: a, method: "GET", path: "/api/requests/c-a", code: 200, cluster: "degraded", want: instancesAre(own)})
	d.ask(t, clusterAsk{what: "a's history, Redis stopped", node: a, method: "GET", path: "/api/history", code: 200, cluster: "degraded"})
	d.ask(t, clusterAsk{what: "readyz, Redis stopped", node: a, method: "GET", path: "/readyz", code: 503, retryAfter: true, want: bodyIs(storeRefusal)})
	s := openEvents(t, a.addr, "")
	s.next(t) // retry
	if snap := s.next(t); snap.event != "snapshot" || !strings.Contains(snap.data, `"connId":"c-a"`) || strings.Contains(snap.data, `"connId":"c-b"`) {
		t.Errorf("a's stream, Redis stopped: %+v, want a snapshot of a's c-a alone", snap)
	}
	if got := s.header.Get(headerCluster); got != "degraded" {
		t.Errorf("a's stream, Redis stopped: %s is %q, want degraded", headerCluster, got)
	}
	d.checkAgainst(t, "a's stream, Redis stopped", http.MethodGet, "/api/events", "", 0, answer{code: s.code, header: s.header, body: s.read})
	s.c.Close()

	// Back: whole within a moment, b's request listed on a again.
	signal("CONT")
	for end := time.Now().Add(waitBound); ; time.Sleep(20 * time.Millisecond) {
		rz, err := fetch(a.testServer, http.MethodGet, "/readyz", "", "")
		ls, err2 := fetch(a.testServer, http.MethodGet, "/api/requests", "", "")
		if err == nil && err2 == nil && rz.code == http.StatusOK && ls.header.Get(headerCluster) == "ok" && instancesAre(both)(ls) == "" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("a is not whole %v after Redis came back: readyz %v, listing %v (%v, %v)", waitBound, rz, ls, err, err2)
		}
	}
	d.ask(t, clusterAsk{what: "readyz, Redis back", node: a, method: "GET", path: "/readyz", code: 200})
	d.ask(t, clusterAsk{what: "a's listing, Redis back", node: a, method: "GET", path: "/api/requests", code: 200, cluster: "ok", want: instancesAre(both)})
}

// checkClusterEvents reads a's event stream: the cluster's snapshot, and a
// parked event of a request b holds, whose id has the cluster's form; then
// a stream on b resumes after that id with the request's ending.
func (d *apiDoc) checkClusterEvents(t *testing.T, a, b *clusterNode, pb parker) {
	listing := d.jsonSchema(t, "/api/requests", http.StatusOK)
	resource := d.jsonSchema(t, "/api/requests/{connId}", http.StatusOK)
	entry := d.jsonSchema(t, "/api/history", http.StatusOK).Items.Value
	stream := func(what string, s *eventStream) {
		t.Helper()
		if got := s.header.Get(headerCluster); got != "ok" {
			t.Errorf("%s: %s is %q, want ok", what, headerCluster, got)
		}
		d.checkAgainst(t, what, http.MethodGet, "/api/events", "", 0, answer{code: s.code, header: s.header, body: s.read})
	}

	s := openEvents(t, a.addr, "")
	s.next(t) // retry
	snap := s.next(t)
	if snap.event != "snapshot" || !strings.Contains(snap.data, `"instance":"`+clusterB+`"`) {
		t.Errorf("a's stream opens with %+v, want a snapshot holding b's requests", snap)
	}
	checkData(t, "the cluster's snapshot", listing, snap)
	held := pb.hold("ev-b", "600")
	var parked sseBlock
	for range 10 { // endings that reached Redis before the stream began may come first
		if parked = s.next(t); strings.Contains(parked.data, `"connId":"ev-b"`) {
			break
		}
	}
	if parked.event != "parked" || !clusterEventID.MatchString(parked.id) || !strings.Contains(parked.data, `"instance":"`+clusterB+`"`) {
		t.Errorf("after parking ev-b on b, a's stream has %+v; want its parked event, with an id such as 1796198281653-0", parked)
	}
	checkData(t, "a parked event of b's", resource, parked)
	stream("a's stream", s)
	s.c.Close()

	d.ask(t, clusterAsk{what: "a DELETE on a of b's ev-b", node: a, method: "DELETE", path: "/api/requests/ev-b", code: 204})
	held.await(t)
	// The ending reaches Redis a moment after ev-b's client has it.
	awaitBody(t, b.testServer, "/api/history?connId=ev-b", `"outcome":"killed"`)
	s = openEvents(t, b.addr, parked.id)
	s.next(t) // retry
	s.next(t) // snapshot
	ended := s.next(t)
	if ended.event != "finished" || !clusterEventID.MatchString(ended.id) || !strings.Contains(ended.data, `"connId":"ev-b","outcome":"killed"`) {
		t.Errorf("b's stream after Last-Event-ID %s has %+v; want the ending of ev-b", parked.id, ended)
	}
	checkData(t, "a replayed ending", entry, ended)
	stream("b's stream after a's id", s)
	s.c.Close()
}
