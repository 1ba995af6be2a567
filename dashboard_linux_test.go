package main

// The dashboard (docs/API.md, section 8) in a real browser: Debian's
// chromium, headless, driven through the DevTools protocol by chromedp,
// against a real parkd on 127.0.0.1. The page learns everything from the
// event stream, so each check polls the page until it shows what is
// expected, within waitBound.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/parkd/parkd/dashboard"
)

// browserBound is the longest one test's browser may live: a hung
// chromium fails the test instead of blocking it.
const browserBound = 4 * time.Minute

// chromiumPath finds Debian's chromium. Under CI=true a missing browser is
// a failure, so that the test cannot silently stop running there.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: apt-get install chromium")
	}
	t.Skip("chromium not found (apt-get install chromium); with CI=true this fails")
	return ""
}

// browser is one headless chromium with one tab, for one test.
type browser struct {
	ctx context.Context // the tab's
	pid int

	mu       sync.Mutex
	messages []string // console calls, exceptions and log entries, in order
	problems []string // those of them that are errors
}

// startBrowser starts chromium with a fresh profile and a window of
// width×height. Cleanup closes it and makes sure no process of it is left.
func startBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	execPath := chromiumPath(t)
	dataDir := t.TempDir()
	root, rootCancel := context.WithTimeout(context.Background(), browserBound)
	actx, acancel := chromedp.NewExecAllocator(root, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.NoSandbox, // root in a container: chromium refuses to start sandboxed
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(width, height),
	)...)
	b := &browser{}
	// A listener given here sees the tab's events from its very start.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.observe))
	b.ctx = ctx
	stop := func() {
		cancel() // closes the browser gracefully and waits for its process
		acancel()
		rootCancel()
	}
	if err := chromedp.Do(ctx); err != nil {
		stop()
		t.Fatalf("starting %s: %v", execPath, err)
	}
	proc := chromedp.FromContext(ctx).Browser.Process()
	b.pid = proc.Pid
	t.Cleanup(func() {
		stop()
		if proc.Signal(syscall.Signal(0)) == nil {
			proc.Kill()
			t.Errorf("chromium (pid %d) outlived its context; killed it", proc.Pid)
		}
		// Its helpers (zygotes, renderers, utilities) leave with it. They
		// name the profile in their rewritten command lines.
		end := time.Now().Add(waitBound)
		for {
			left := processesNaming(dataDir)
			if len(left) == 0 {
				return
			}
			if time.Now().After(end) {
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				t.Errorf("chromium processes %v were still running %v after the browser closed; killed them", left, waitBound)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return b
}

// processesNaming lists the processes whose command line contains s.
func processesNaming(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// observe runs on the tab's reader loop: it only records.
func (b *browser) observe(ev any) {
	var line string
	bad := false
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
		bad = ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		line = "exception: " + d.Text
		if d.Exception != nil {
			line += " " + d.Exception.Description
		}
		bad = true
	case *cdplog.EventEntryAdded:
		line = "log." + string(ev.Entry.Level) + " (" + string(ev.Entry.Source) + "): " + ev.Entry.Text + " " + ev.Entry.URL
		bad = ev.Entry.Level == cdplog.EntryLevelError
	default:
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.messages = append(b.messages, line)
	if bad {
		b.problems = append(b.problems, line)
	}
}

// checkConsole fails the test for any console error or exception so far,
// but those that expected accepts.
func (b *browser) checkConsole(t *testing.T, expected ...func(string) bool) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	bad := false
	for _, p := range b.problems {
		if !slices.ContainsFunc(expected, func(ok func(string) bool) bool { return ok(p) }) {
			t.Errorf("browser: %s", p)
			bad = true
		}
	}
	if bad {
		t.Logf("every browser message:\n%s", strings.Join(b.messages, "\n"))
	}
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitBound)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// value, given as JSON, into T.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := evalErr[T](b, expr)
	if err != nil {
		t.Fatalf("evaluating %s: %v", clipJS(expr), err)
	}
	return v
}

func evalErr[T any](b *browser, expr string) (T, error) {
	var v T
	ctx, cancel := context.WithTimeout(b.ctx, waitBound)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify((() => ("+expr+"))() ?? null)"))
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal([]byte(s), &v)
}

func clipJS(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// waitPage evaluates expr until ok accepts its value, and returns that
// value; after waitBound it fails the test with the last one. The
// evaluation goes through the protocol, not a function built in the page,
// which the page's Content-Security-Policy forbids.
func waitPage[T any](t *testing.T, b *browser, what, expr string, ok func(T) bool) T {
	t.Helper()
	end := time.Now().Add(waitBound)
	for {
		v, err := evalErr[T](b, expr)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v; last %+v (%v)", what, waitBound, v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// js quotes s as a JavaScript string literal (JSON's are).
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pageRow is a row of the parked list as the page shows it.
type pageRow struct {
	ID     string `json:"id"`
	Left   string `json:"left"`
	Then   string `json:"then"`
	Phase  string `json:"phase"`
	Bytes  string `json:"bytes"`
	Remote string `json:"remote"`
	Gone   bool   `json:"gone"`
}

const rowsJS = `[...document.querySelectorAll('#viewport .row:not([hidden])')].map(r => ({
	id: r.querySelector('.id').textContent, left: r.querySelector('.left').textContent,
	then: r.querySelector('.then').textContent, phase: r.querySelector('.phase').textContent,
	bytes: r.querySelector('.bytes').textContent, remote: r.querySelector('.remote').textContent,
	gone: r.classList.contains('gone')}))`

// findRowJS is an expression for the visible row of id.
func findRowJS(id string) string {
	return `[...document.querySelectorAll('#viewport .row:not([hidden])')].find(r => r.querySelector('.id').textContent === ` + js(id) + `)`
}

func (b *browser) rows(t *testing.T) []pageRow {
	t.Helper()
	return eval[[]pageRow](t, b, rowsJS)
}

func rowOf(rows []pageRow, id string) (pageRow, bool) {
	i := slices.IndexFunc(rows, func(r pageRow) bool { return r.ID == id })
	if i < 0 {
		return pageRow{}, false
	}
	return rows[i], true
}

// waitRows waits until the parked list shows each of ids, not ended.
func (b *browser) waitRows(t *testing.T, ids ...string) []pageRow {
	t.Helper()
	return waitPage(t, b, fmt.Sprintf("rows of %q", ids), rowsJS, func(rows []pageRow) bool {
		for _, id := range ids {
			if r, ok := rowOf(rows, id); !ok || r.Gone {
				return false
			}
		}
		return true
	})
}

// historyJS gives the history table as cells: connId, outcome, then,
// code, duration, bytes, ended.
const historyJS = `[...document.querySelectorAll('#history tr')].map(tr => [...tr.children].map(td => td.textContent))`

// waitHistory waits until the history shows connId id with outcome, then
// and code as the page writes them, and returns that row.
func (b *browser) waitHistory(t *testing.T, id, outcome, then, code string) []string {
	t.Helper()
	rows := waitPage(t, b, "history row "+id+" "+outcome, historyJS, func(rows [][]string) bool {
		return slices.ContainsFunc(rows, func(r []string) bool { return len(r) == 7 && r[0] == id && r[1] == outcome })
	})
	i := slices.IndexFunc(rows, func(r []string) bool { return r[0] == id && r[1] == outcome })
	if rows[i][2] != then || rows[i][3] != code {
		t.Errorf("history row of %q: then %q, code %q; want %q, %q (row %q)", id, rows[i][2], rows[i][3], then, code, rows[i])
	}
	return rows[i]
}

// waitLive waits until the page has its event stream's snapshot.
func (b *browser) waitLive(t *testing.T) {
	t.Helper()
	waitPage(t, b, "the page's stream live", `document.getElementById('conn').dataset.state`, func(s string) bool { return s == "live" })
}

// pointerOnList moves the mouse onto the parked list, or off it.
func (b *browser) pointerOnList(t *testing.T, on bool) {
	t.Helper()
	x, y := 1.0, 1.0
	if on {
		at := eval[[]float64](t, b, `(() => { const r = document.getElementById('viewport').getBoundingClientRect(); return [r.left + 4, r.bottom - 4] })()`)
		x, y = at[0], at[1]
	}
	b.do(t, "move the mouse", chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y))
	waitPage(t, b, fmt.Sprintf("the list paused %v", on), `!document.getElementById('paused').hidden`, func(p bool) bool { return p == on })
}

// killRow picks then in id's row, as a user does, and clicks its button.
// The pointer is put on the list first: that holds the list's order still,
// so that the click lands on the row aimed at.
func (b *browser) killRow(t *testing.T, id, then string) {
	t.Helper()
	b.pointerOnList(t, true)
	picked := eval[bool](t, b, `(() => { const r = `+findRowJS(id)+`; if (!r) return false;
		const s = r.querySelector('select'); s.value = `+js(then)+`; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value === `+js(then)+` })()`)
	if !picked {
		t.Fatalf("no row of %q to pick then %q in; rows %+v", id, then, b.rows(t))
	}
	b.do(t, "click kill on "+id, chromedp.Click(chromedp.JSPath(findRowJS(id)+`.querySelector('.kill-button')`)))
}

// getPage reads GET / with the harness's client: it is HTML, not JSON.
func getPage(t *testing.T, ts *testServer, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := ts.client.Get(ts.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp, body
}

// The dashboard's files are served with their types, GET / with the
// Content-Security-Policy, and nothing else under the assets' prefix.
func TestDashboardServed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	resp, body := getPage(t, ts, "/")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, dashboard.Page()) {
		t.Errorf("GET /: %d, %d bytes; want 200 and the page", resp.StatusCode, len(body))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/html" {
		t.Errorf("GET /: Content-Type %q, want text/html", resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != dashboard.ContentSecurityPolicy {
		t.Errorf("GET /: Content-Security-Policy %q, want %q", got, dashboard.ContentSecurityPolicy)
	}
	for _, name := range dashboard.Assets() {
		want, ct, _ := dashboard.Asset(name)
		resp, body := getPage(t, ts, dashboard.Prefix+name)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.Header.Get("Content-Type") != ct {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %q, %d bytes", dashboard.Prefix+name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ct, len(want))
		}
	}
	for _, path := range []string{dashboard.Prefix + "index.html", dashboard.Prefix + "nope.js", dashboard.Prefix + "..%2fmain.go"} {
		wantError(t, "GET "+path, ts.get(t, path), http.StatusNotFound, "not found")
	}
}

// The page in a browser, against a real parkd: rows appear with their
// countdown, a row's kill button ends its request with the chosen then,
// the form parks a request and shows its answer, the history fills in,
// a reload shows what is parked again, untrusted connIds stay text, and
// the console stays clean.
func TestDashboardBrowser(t *testing.T) {
	ts := startServer(t, testConfig())
	b := startBrowser(t, 1280, 900)
	// park parks for the whole test, also from a subtest, which would
	// otherwise wait for the answer at its end.
	park := func(id, timeout string) <-chan reply { return ts.parkAsync(t, id, timeout) }

	// Parked before the page opens: they come in its snapshot.
	a1 := park("a1", "60")
	a2 := park("a2", "61")
	a3 := park("a3", "62")
	ts.waitListed(t, "a1", "a2", "a3")

	resp, err := func() (*http.Response, error) {
		ctx, cancel := context.WithTimeout(b.ctx, waitBound)
		defer cancel()
		r, err := chromedp.RunResponse(ctx, chromedp.Navigate(ts.base+"/"))
		if err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: int(r.Status), Header: headerOf(r.Headers)}, nil
	}()
	if err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != dashboard.ContentSecurityPolicy {
		t.Errorf("the browser got GET / %d with Content-Security-Policy %q; want 200 with %q",
			resp.StatusCode, resp.Header.Get("Content-Security-Policy"), dashboard.ContentSecurityPolicy)
	}
	b.waitLive(t)

	t.Run("rows with a countdown", func(t *testing.T) {
		// Parked while the page is open: they come as events.
		short := park("short", "1.5")
		ts.waitListed(t, "short")
		rows := b.waitRows(t, "a1", "a2", "a3", "short")
		first, _ := rowOf(rows, "a1")
		secs, err := strconv.ParseFloat(strings.TrimSuffix(first.Left, " s"), 64)
		if err != nil || secs <= 0 || secs > 60 {
			t.Errorf("a1's countdown shows %q, want seconds left of 60", first.Left)
		}
		if first.Then != "200" || first.Phase != "waiting" || first.Bytes != "0" || !strings.HasPrefix(first.Remote, "127.0.0.1:") {
			t.Errorf("a1's row: %+v; want then 200, waiting, 0 bytes, from 127.0.0.1", first)
		}
		if ids := idsOf(rows); !slices.Equal(ids[:4], []string{"short", "a1", "a2", "a3"}) {
			t.Errorf("rows in the order %q, want the soonest deadline first", ids)
		}
		waitPage(t, b, "a1's countdown moving", rowsJS, func(rows []pageRow) bool {
			r, ok := rowOf(rows, "a1")
			return ok && r.Left != first.Left
		})

		// The short one runs out: ok in the history, out of the list.
		wantBody(t, "short", await(t, "short", short), http.StatusOK, bodyOK)
		b.waitHistory(t, "short", "ok", "200", "200")
		waitPage(t, b, "short's row gone", rowsJS, func(rows []pageRow) bool { _, in := rowOf(rows, "short"); return !in })
	})

	t.Run("kill from a row", func(t *testing.T) {
		b.killRow(t, "a2", "503")
		r := await(t, "a2", a2)
		wantBody(t, "a2 killed from the page with then=503", r, http.StatusServiceUnavailable, bodyKilled)
		waitPage(t, b, "a2's row gone", rowsJS, func(rows []pageRow) bool { _, in := rowOf(rows, "a2"); return !in })
		b.waitHistory(t, "a2", "killed", "503", "503")
		if _, in := lookup(ts.status(t), "a2"); in {
			t.Errorf("a2 still parked after its kill")
		}

		// While the pointer stays on the list, its order holds: a new
		// park is counted but not drawn until the pointer leaves.
		park("late", "60")
		ts.waitListed(t, "late")
		waitPage(t, b, "the count of 3 parked", `document.getElementById('parked-count').textContent`, func(s string) bool { return s == "(3)" })
		if _, in := rowOf(b.rows(t), "late"); in {
			t.Errorf("a row appeared under the pointer; want the list held still while the pointer is on it")
		}
		b.pointerOnList(t, false)
		b.waitRows(t, "late", "a1", "a3")
	})

	t.Run("park from the form", func(t *testing.T) {
		b.do(t, "fill the form",
			chromedp.SetValue(chromedp.ID("f-connId"), "form-1"),
			chromedp.SetValue(chromedp.ID("f-timeout"), "0.5"),
			chromedp.SetValue(chromedp.ID("f-then"), "202"),
			chromedp.SetValue(chromedp.ID("f-body"), "40"),
			chromedp.Click(chromedp.ID("f-submit")),
		)
		type mine struct {
			ID, Kind, State, Answer string
		}
		got := waitPage(t, b, "form-1's answer shown", `[...document.querySelectorAll('#mine li')].map(li => ({
			ID: li.querySelector('.id').textContent, Kind: li.dataset.kind ?? '',
			State: li.querySelector('.state').textContent, Answer: li.querySelector('.answer').textContent}))`,
			func(ms []mine) bool { return len(ms) > 0 && ms[0].ID == "form-1" && ms[0].Kind != "" })
		if m := got[0]; m.Kind != "ok" || !strings.HasPrefix(m.State, "202 ") || m.Answer != bodyOK {
			t.Errorf("form-1 shown as %+v; want kind ok, state 202 …, answer %s", m, bodyOK)
		}
		b.waitHistory(t, "form-1", "ok", "202", "202")
		if id := eval[string](t, b, `document.getElementById('f-connId').value`); id == "" || id == "form-1" {
			t.Errorf("the form's connId after a park is %q, want a fresh one", id)
		}
	})

	t.Run("reload", func(t *testing.T) {
		b.do(t, "reload", chromedp.Reload())
		b.waitLive(t)
		b.waitRows(t, "late", "a1", "a3")
		b.waitHistory(t, "a2", "killed", "503", "503")
		b.waitHistory(t, "short", "ok", "200", "200")
	})

	t.Run("untrusted connIds are text", func(t *testing.T) {
		img := `<img src=x onerror=window.__pwned=1>`
		script := `<script>window.__pwned=2</script>`
		imgReply := park(img, "60")
		park(script, "60")
		ts.waitListed(t, img, script)
		b.waitRows(t, img, script)
		for _, id := range []string{img, script} {
			if got := eval[string](t, b, findRowJS(id)+`.querySelector('.id').textContent`); got != id {
				t.Errorf("the row shows %q, want the connId %q as text", got, id)
			}
		}
		b.do(t, "filter", chromedp.SendKeys(chromedp.ID("filter"), "onerror"))
		waitPage(t, b, "the filter applied", rowsJS, func(rows []pageRow) bool { return len(rows) == 1 && rows[0].ID == img })
		if got := eval[string](t, b, `document.getElementById('parked-count').textContent`); got != "(1 of 5 match)" {
			t.Errorf("count with a filter: %q, want (1 of 5 match)", got)
		}
		b.killRow(t, img, "500")
		wantBody(t, "the HTML connId killed", await(t, "img", imgReply), http.StatusInternalServerError, bodyKilled)
		b.pointerOnList(t, false)
		row := b.waitHistory(t, img, "killed", "500", "500")
		if row[0] != img {
			t.Errorf("the history shows %q, want %q", row[0], img)
		}
		b.do(t, "clear the filter", chromedp.Evaluate[chromedp.Void](`(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')) })()`))
		b.waitRows(t, script, "late", "a1", "a3")
		if got := eval[string](t, b, `typeof window.__pwned`); got != "undefined" {
			t.Errorf("window.__pwned is %s: a connId ran as script", got)
		}
		if n := eval[int](t, b, `document.querySelectorAll('main img, main script').length`); n != 0 {
			t.Errorf("%d img or script elements in the page: a connId became markup", n)
		}
	})

	t.Run("counters", func(t *testing.T) {
		type counts struct{ OK, Killed, Abandoned, Shutdown, Rejected string }
		want := counts{OK: "2", Killed: "2", Abandoned: "0", Shutdown: "0", Rejected: "0"} // short, form-1; a2, the HTML one
		waitPage(t, b, "the outcome counters", `({OK: document.getElementById('count-ok').textContent,
			Killed: document.getElementById('count-killed').textContent, Abandoned: document.getElementById('count-abandoned').textContent,
			Shutdown: document.getElementById('count-shutdown').textContent, Rejected: document.getElementById('count-rejected').textContent})`,
			func(c counts) bool { return c == want })
	})

	heap, err := jsHeap(b)
	if err != nil {
		t.Errorf("reading the JS heap: %v", err)
	}
	t.Logf("JS heap with %d parked: %.1f MB", len(ts.status(t)), heap/1e6)
	b.checkConsole(t)
	for _, ch := range []<-chan reply{a1, a3} {
		select {
		case r := <-ch:
			t.Errorf("a parked request answered before its time: %v", r)
		default:
		}
	}
}

// The page reconnects by itself: parkd goes away and comes back on the
// same address, and the page shows what the new one has parked.
func TestDashboardReconnects(t *testing.T) {
	first := startServer(t, testConfig())
	b := startBrowser(t, 1280, 900)
	before := first.parkAsync(t, "before", "60")
	first.waitListed(t, "before")
	b.do(t, "open the dashboard", chromedp.Navigate(first.base+"/"))
	b.waitLive(t)
	b.waitRows(t, "before")

	first.cancel() // shuts down; with no grace the parked request gets 503
	if _, ok := first.wait(); !ok {
		t.Fatalf("parkd did not stop within %v with the page's stream open", waitBound)
	}
	wantBody(t, "before, at shutdown", await(t, "before", before), http.StatusServiceUnavailable, bodyShuttingDown)
	waitPage(t, b, "the page seeing its stream end", `document.getElementById('conn').dataset.state`, func(s string) bool { return s != "live" })

	second := startServerWrapped(t, testConfig(), func(ln net.Listener) net.Listener {
		ln.Close()
		again, err := net.Listen("tcp", first.addr)
		if err != nil {
			t.Fatalf("listen again on %s: %v", first.addr, err)
		}
		return again
	})
	after := second.parkAsync(t, "after", "60")
	second.waitListed(t, "after")
	b.waitLive(t)
	rows := b.waitRows(t, "after")
	if _, in := rowOf(rows, "before"); in {
		t.Errorf("the row of a request the old server ended is still shown: %+v", rows)
	}
	b.killRow(t, "after", "200")
	wantBody(t, "after, killed with then=200", await(t, "after", after), http.StatusOK, bodyKilled)
	b.waitHistory(t, "after", "killed", "200", "200")
	// While parkd was away the browser logged its failed stream.
	b.checkConsole(t, func(msg string) bool {
		return strings.HasPrefix(msg, "log.error (network): ") && strings.Contains(msg, "net::ERR_") && strings.HasSuffix(msg, "/api/events")
	})
}

func idsOf(rows []pageRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

// headerOf turns the protocol's headers into an http.Header.
func headerOf(h map[string]any) http.Header {
	out := http.Header{}
	for k, v := range h {
		out.Set(k, fmt.Sprint(v))
	}
	return out
}

// jsHeap is the tab's used JS heap in bytes after a garbage collection.
func jsHeap(b *browser) (float64, error) {
	ctx, cancel := context.WithTimeout(b.ctx, waitBound)
	defer cancel()
	if _, err := chromedp.Call(ctx, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
		return 0, err
	}
	if _, err := chromedp.Call(ctx, performance.Enable, performance.EnableParams{}); err != nil {
		return 0, err
	}
	m, err := chromedp.Call(ctx, performance.GetMetrics, cdp.Empty{})
	if err != nil {
		return 0, err
	}
	for _, x := range m.Metrics {
		if x.Name == "JSHeapUsedSize" {
			return x.Value, nil
		}
	}
	return 0, errors.New("no JSHeapUsedSize metric")
}

// rendererMemory reads the memory of the browser's renderer processes
// (the tab's, and any spare one) as the system sees it: their resident
// sets, which count shared pages such as chromium's own code, and their
// private memory (Private_Clean + Private_Dirty of smaps_rollup), what
// the tab alone holds.
func rendererMemory(b *browser) (renderers int, rss, private int64) {
	for _, pid := range descendantsOf(b.pid) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmd), "--type=renderer") {
			continue
		}
		renderers++
		smaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		for l := range strings.Lines(string(smaps)) {
			name, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch name {
			case "Rss":
				rss += kb << 10
			case "Private_Clean", "Private_Dirty":
				private += kb << 10
			}
		}
	}
	return renderers, rss, private
}

// descendantsOf lists the processes below pid.
func descendantsOf(pid int) []int {
	kids := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		me, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid int
		if _, err := fmt.Sscan(string(stat[i+2:]), &state, &ppid); err == nil {
			kids[ppid] = append(kids[ppid], me)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, k := range kids[p] {
			out = append(out, k)
			walk(k)
		}
	}
	walk(pid)
	return out
}

// rawPark parks path on a connection of its own that the test's cleanup
// closes; nothing reads its answer.
func rawPark(t *testing.T, ts *testServer, path string) *rawConn {
	t.Helper()
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(path))
	return c
}

// With 19,000 parked the page stays usable: the tab's JS heap stays under
// 200 MB and the page draws only the rows that fit; it logs the heap, the
// renderer's memory and the render rate, with the parks coming as events,
// after a reload (one snapshot), and after a quarter of the clients left
// at once. 19,000 client connections need parkd in a child process, with
// an open-file limit of its own; the test holds the client ends (fewer
// when its own limit is lower). Only with PARKD_DASHBOARD_LOAD=1.
func TestDashboardLoad(t *testing.T) {
	if testing.Short() || os.Getenv("PARKD_DASHBOARD_LOAD") != "1" {
		t.Skip("PARKD_DASHBOARD_LOAD=1 parks 19,000 requests and measures the page")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	n := min(19_000, int(lim.Cur)-500)
	c := startChild(t)
	ts := clientFor(t, c.addr)
	b := startBrowser(t, 1280, 900)
	renderers, rss, private := rendererMemory(b)
	t.Logf("a blank tab: %d renderer processes: %.0f MB private, %.0f MB resident", renderers, float64(private)/1e6, float64(rss)/1e6)
	b.do(t, "open the dashboard", chromedp.Navigate(ts.base+"/"))
	b.waitLive(t)
	renderers, rss, private = rendererMemory(b)
	t.Logf("the dashboard, nothing parked: %d renderer processes: %.0f MB private, %.0f MB resident", renderers, float64(private)/1e6, float64(rss)/1e6)

	// statsJS is what the page reports of its rendering over its last 2 s
	// window (at its foot).
	const statsJS = `({...document.getElementById('stats').dataset, text: document.getElementById('stats').textContent})`
	// shows says whether the page counts n parked.
	shows := func(n int) func() bool {
		want := "(" + strconv.Itoa(n) + ")"
		return func() bool {
			s, err := evalErr[string](b, `document.getElementById('parked-count').textContent`)
			return err == nil && s == want
		}
	}
	// during runs burst on its own goroutine and reads each window the
	// page completes until the burst is over, the page shows n parked and
	// one more window has completed; it reports the busiest. Only this
	// goroutine uses the tab.
	during := func(what string, n int, burst func()) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			burst()
		}()
		var busiest map[string]string
		last, most := eval[map[string]string](t, b, statsJS)["text"], -1
		end := time.Now().Add(time.Minute)
		for over, windows := false, 0; !over || windows == 0; {
			select {
			case <-done:
				if !over {
					over = shows(n)()
				}
			case <-time.After(250 * time.Millisecond):
			}
			if time.Now().After(end) {
				<-done
				t.Fatalf("%s: the page never showed %d parked", what, n)
			}
			st := eval[map[string]string](t, b, statsJS)
			if st["text"] == last {
				continue
			}
			last = st["text"]
			if over {
				windows++
			}
			if ev, _ := strconv.Atoi(st["events"]); ev > most {
				busiest, most = st, ev
			}
		}
		t.Logf("%s: the busiest 2 s: %s events/s, %s renders/s at %s ms each, the longest %s ms",
			what, busiest["events"], busiest["renders"], busiest["renderMs"], busiest["renderMaxMs"])
	}
	// measure waits for a quiet window and reads the tab's memory.
	measure := func(what string) {
		t.Helper()
		time.Sleep(4500 * time.Millisecond) // two of the page's windows: the last one quiet
		st := eval[map[string]string](t, b, statsJS)
		heap, err := jsHeap(b)
		if err != nil {
			t.Fatalf("JS heap: %v", err)
		}
		rows := eval[int](t, b, `document.querySelectorAll('#viewport .row').length`)
		renderers, rss, private := rendererMemory(b)
		t.Logf("%s: JS heap %.1f MB; %d renderer processes: %.0f MB private, %.0f MB resident; %s renders/s at %s ms each; %d row elements",
			what, heap/1e6, renderers, float64(private)/1e6, float64(rss)/1e6, st["renders"], st["renderMs"], rows)
		if heap > 200e6 || private > 200e6 {
			t.Errorf("%s: JS heap %.0f MB, renderers' private memory %.0f MB; want both under 200 MB", what, heap/1e6, float64(private)/1e6)
		}
		if rows > 100 {
			t.Errorf("%s: %d row elements for a list that shows about 15", what, rows)
		}
	}

	// Parked while the page is open: n parked events.
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	})
	var failed sync.Map
	began := time.Now()
	during(fmt.Sprintf("%d parking", n), n, func() {
		each(n, 32, func(i int) {
			cn, err := net.DialTimeout("tcp", c.addr, waitBound)
			if err != nil {
				failed.Store(i, err)
				return
			}
			conns[i] = cn
			// Deadlines 2 to 12 minutes away, spread.
			timeout := strconv.Itoa(120 + i*7919%600)
			if _, err := io.WriteString(cn, getRequest(parkPath("load-"+strconv.Itoa(i), timeout))); err != nil {
				failed.Store(i, err)
			}
		})
	})
	failed.Range(func(k, v any) bool {
		t.Fatalf("park %v: %v", k, v)
		return false
	})
	t.Logf("%d parked through as many connections; the page showed them all %v after the first dial", n, time.Since(began).Round(time.Millisecond))
	measure(fmt.Sprintf("%d parked, from events", n))

	reloaded := time.Now()
	b.do(t, "reload", chromedp.Reload())
	waitPage(t, b, "the page showing all parked after a reload", `document.getElementById('parked-count').textContent`,
		func(s string) bool { return s == "("+strconv.Itoa(n)+")" })
	t.Logf("reload to all %d shown: %v", n, time.Since(reloaded).Round(time.Millisecond))
	measure(fmt.Sprintf("%d parked, from the snapshot", n))

	// Scrolled to the middle, the rows there are drawn.
	b.do(t, "scroll", chromedp.Evaluate[chromedp.Void](`(() => { const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight / 2 })()`))
	mid := waitPage(t, b, "rows in the middle drawn", rowsJS, func(rows []pageRow) bool { return len(rows) > 5 })
	t.Logf("scrolled to the middle: rows %s … %s", mid[0].ID, mid[len(mid)-1].ID)

	// A quarter of the clients leave at once: that many finished events.
	gone := time.Now()
	during(fmt.Sprintf("%d leaving", n/4), n-n/4, func() {
		for _, cn := range conns[:n/4] {
			cn.Close()
		}
	})
	t.Logf("%d clients left: the page showed it %v later", n/4, time.Since(gone).Round(time.Millisecond))
	measure(fmt.Sprintf("%d parked after %d left", n-n/4, n/4))
	b.checkConsole(t)
}

// TestDashboardScreenshot writes docs/dashboard.png, the picture the
// README shows, with a few dozen requests parked, some dripping and a few
// in the history. Only with PARKD_SCREENSHOT=1, so that test runs do not
// rewrite the file.
func TestDashboardScreenshot(t *testing.T) {
	if os.Getenv("PARKD_SCREENSHOT") != "1" {
		t.Skip("PARKD_SCREENSHOT=1 writes docs/dashboard.png")
	}
	ts := startServer(t, testConfig())
	b := startBrowser(t, 1280, 1000)

	park := func(id, query string) { rawPark(t, ts, "/api/request?connId="+url.QueryEscape(id)+"&"+query) }
	// Dripping bodies, started before the page opens so that its snapshot
	// has their bytes.
	for i, q := range []string{"timeout=1&body=2000&drip=40", "timeout=1.5&body=600&drip=55", "timeout=1&drip=75"} {
		park("stream-"+strconv.Itoa(i+1), q)
	}
	// A few finished ones for the history.
	park("checkout-retry", "timeout=0.4&then=503")
	park("flaky-upstream", "timeout=0.6&then=reset")
	park("slow-partner", "timeout=0.8&then=truncate")
	gone := rawPark(t, ts, parkPath("gave-up", "30"))
	park("stuck-job", "timeout=30")
	ts.waitListed(t, "gave-up", "stuck-job")
	gone.Close()
	ts.put(t, "/api/kill", `{"connId":"stuck-job","then":"502"}`, "application/json")
	time.Sleep(3 * time.Second) // the drips send their first pieces

	b.do(t, "open the dashboard", chromedp.Navigate(ts.base+"/"))
	b.waitLive(t)
	// More, in waves, so that the chart rises.
	thens := []string{"200", "503", "200:90,503:9,reset:1", "502", "close", "200"}
	for w := range 4 {
		for i := range 8 {
			k := w*8 + i
			park(fmt.Sprintf("order-%04d", 1000+k*37), fmt.Sprintf("timeout=%d&then=%s", 20+k*13%280, url.QueryEscape(thens[k%len(thens)])))
		}
		time.Sleep(1500 * time.Millisecond)
	}
	park(`<img src=x onerror=alert(1)>`, "timeout=50")
	b.do(t, "park from the form",
		chromedp.SetValue(chromedp.ID("f-timeout"), "1"),
		chromedp.SetValue(chromedp.ID("f-then"), "503"),
		chromedp.Click(chromedp.ID("f-submit")),
	)
	waitPage(t, b, "the form's answer", `document.querySelector('#mine li')?.dataset.kind ?? ''`, func(s string) bool { return s != "" })
	b.do(t, "park from the form",
		chromedp.SetValue(chromedp.ID("f-timeout"), "300"),
		chromedp.SetValue(chromedp.ID("f-then"), "200"),
		chromedp.SetValue(chromedp.ID("f-drip"), "60"),
		chromedp.Click(chromedp.ID("f-submit")),
	)
	time.Sleep(5500 * time.Millisecond) // the counters' next read, the chart's samples
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if _, err := png.Decode(bytes.NewReader(shot)); err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	path := filepath.Join("docs", "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(shot))
	// The browser logs the form's 503 as a failed load.
	b.checkConsole(t, func(msg string) bool {
		return strings.HasPrefix(msg, "log.error (network): ") && strings.Contains(msg, "status of 503") && strings.Contains(msg, "/api/request?")
	})
}
