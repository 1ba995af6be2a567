package main

// Section 3 of the contract: PUT /api/kill, in every form it accepts.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every accepted form kills: the parked request answers 500
// {"status":"killed"}, the kill 200 {"status":"ok"}, and the entry is gone
// from serverStatus by the time the kill has answered.
func TestKillForms(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	tests := []struct {
		name, query, body, contentType string // ID stands for the connId
	}{
		{"json number", "", `{"connId":ID}`, "application/json"},
		{"json number without content type", "", `{"connId":ID}`, ""},
		{"json number as a form", "", `{"connId":ID}`, "application/x-www-form-urlencoded"},
		{"json string", "", `{"connId":"ID"}`, "application/json"},
		{"json string as text", "", `{"connId":"ID"}`, "text/plain"},
		{"json string as multipart", "", `{"connId":"ID"}`, "multipart/form-data; boundary=x"},
		{"json with blanks and other keys", "", " \r\n{ \"other\": [1, {\"connId\": 1}], \"connId\" : ID }\n", "application/json"},
		{"json key twice with one value", "", `{"connId":ID,"connId":"ID"}`, "application/json"},
		{"json null then a value", "", `{"connId":null,"connId":ID}`, "application/json"},
		{"seed form as the shell sends it", "", `{connId=ID}`, "application/x-www-form-urlencoded"},
		{"seed form verbatim", "", `{"connId"=ID}`, "application/x-www-form-urlencoded"},
		{"seed form with a quoted value", "", `{connId="ID"}`, ""},
		{"seed form with both quoted", "", `{"connId"="ID"}`, "text/plain"},
		{"form body", "", `connId=ID`, "application/x-www-form-urlencoded"},
		{"form body among other keys", "", `a=1&connId=ID&b`, "application/x-www-form-urlencoded"},
		{"form body without content type", "", `connId=ID`, ""},
		{"query string", "connId=ID", "", ""},
		{"query and body with the same id", "connId=ID", `{"connId":ID}`, "application/json"},
		{"query and form with the same id", "connId=ID", `connId=ID`, ""},
		{"empty json value and the query", "connId=ID", `{"connId":""}`, "application/json"},
		{"empty query value and a json body", "connId=", `{"connId":ID}`, "application/json"},
		{"query repeats one value", "connId=ID&connId=ID", "", ""},
		{"form body labelled json", "", `connId=ID`, "application/json"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := strconv.Itoa(1000 + i) // numbers, so every form can carry them
			parked := ts.parkAsync(t, id, "60")
			ts.waitListed(t, id)
			path := "/api/kill"
			if tt.query != "" {
				path += "?" + strings.ReplaceAll(tt.query, "ID", id)
			}
			body := strings.ReplaceAll(tt.body, "ID", id)
			wantBody(t, "PUT "+path+" "+body, ts.put(t, path, body, tt.contentType), http.StatusOK, bodyOK)
			if _, in := lookup(ts.status(t), id); in {
				t.Errorf("%s still listed after its kill answered", id)
			}
			wantBody(t, "killed request", await(t, "killed request", parked), http.StatusInternalServerError, bodyKilled)
		})
	}
}

// A JSON number is taken as its literal text: 1.50 and 01 are ids of their
// own, not 1.5 and 1.
func TestKillJSONNumberLiteral(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, id := range []string{"1.50", "12345678901234567890123456789", "1e3"} {
		parked := ts.parkAsync(t, id, "60")
		ts.waitListed(t, id)
		wantBody(t, "kill "+id, ts.put(t, "/api/kill", `{"connId":`+id+`}`, "application/json"), http.StatusOK, bodyOK)
		wantBody(t, "killed "+id, await(t, id, parked), http.StatusInternalServerError, bodyKilled)
	}
	// "1.5" is not "1.50".
	parked := ts.parkAsync(t, "1.5", "60")
	ts.waitListed(t, "1.5")
	wantBody(t, "kill 1.50", ts.put(t, "/api/kill", `{"connId":1.50}`, ""), http.StatusBadRequest, `{"status":"invalid connection Id : 1.50"}`)
	wantBody(t, "kill 1.5", ts.put(t, "/api/kill", `{"connId":1.5}`, ""), http.StatusOK, bodyOK)
	wantBody(t, "killed 1.5", await(t, "1.5", parked), http.StatusInternalServerError, bodyKilled)
}

// Kills that name no usable connId, or two different ones, answer 400 and
// kill nothing; those that name none or cannot be read name the accepted
// forms.
func TestKillRefusals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const victim, other = "77", "78"
	// Far longer than the parallel subtests can wait for their turn in a
	// busy suite: the cleanup finds both still parked.
	v := ts.parkAsync(t, victim, "3600")
	o := ts.parkAsync(t, other, "3600")
	ts.waitListed(t, victim, other)
	tests := []struct {
		name, query, body, contentType string
		namesForms                     bool // the sentence lists the accepted forms
	}{
		{"query and json body differ", "connId=77", `{"connId":78}`, "application/json", false},
		{"query and form body differ", "connId=77", `connId=78`, "", false},
		{"query repeats with two values", "connId=77&connId=78", "", "", false},
		{"json key repeats with two values", "", `{"connId":77,"connId":"78"}`, "application/json", false},
		{"form repeats with two values", "", `connId=77&connId=78`, "", false},
		{"seed form repeats with two values", "", `{connId=77&connId=78}`, "", false},
		{"no body, no query", "", "", "", true},
		{"empty json id", "", `{"connId":""}`, "application/json", true},
		{"json null", "", `{"connId":null}`, "application/json", true},
		{"json without connId", "", `{"id":77}`, "application/json", true},
		{"json with connId nested only", "", `{"x":{"connId":77}}`, "application/json", true},
		{"json bool", "", `{"connId":true}`, "application/json", true},
		{"json array", "", `{"connId":[77]}`, "application/json", true},
		{"json truncated", "", `{"connId":77`, "application/json", true},
		{"json with trailing data", "", `{"connId":77} {"connId":78}`, "application/json", true},
		{"not json, not a form", "", `{connId: 77}`, "application/json", true},
		{"a bare number", "", `77`, "text/plain", true},
		{"form without connId", "", `id=77`, "", true},
		{"form with a malformed escape", "", `connId=%zz`, "", true},
		{"wrong case key", "", `{"connid":77}`, "application/json", true},
		{"query with a malformed escape", "connId=7%", "", "", false},
		{"blank body", "", " \r\n\t", "text/plain", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := "/api/kill"
			if tt.query != "" {
				path += "?" + tt.query
			}
			obj := wantError(t, "PUT "+path+" "+tt.body, ts.put(t, path, tt.body, tt.contentType), http.StatusBadRequest, "error")
			msg, _ := obj["error"].(string)
			if obj != nil && tt.namesForms {
				for _, form := range []string{`{"connId":12}`, `{connId=12}`, `connId=12`, `/api/kill?connId=12`} {
					if !strings.Contains(msg, form) {
						t.Errorf("error %q does not name the accepted form %s", msg, form)
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		// After every refusal: both are still parked, then kill them.
		es := ts.status(t)
		for _, id := range []string{victim, other} {
			if _, in := lookup(es, id); !in {
				t.Errorf("%s was killed by a refused kill; serverStatus %v", id, es)
			}
			wantBody(t, "kill "+id, ts.killJSON(t, id), http.StatusOK, bodyOK)
		}
		wantBody(t, victim, await(t, victim, v), http.StatusInternalServerError, bodyKilled)
		wantBody(t, other, await(t, other, o), http.StatusInternalServerError, bodyKilled)
	})
}

// Killing what is not parked — never was, already finished, already
// killed, parked with timeout 0, or abandoned — answers 400 with the
// seed's sentence as the status.
func TestKillNotParked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	notParked := func(id string) string {
		b, _ := json.Marshal(map[string]string{"status": "invalid connection Id : " + id})
		return string(b)
	}
	wantBody(t, "kill never parked", ts.put(t, "/api/kill", `{"connId":12}`, "application/json"), http.StatusBadRequest, notParked("12"))
	wantBody(t, "kill never parked via query", ts.put(t, "/api/kill?connId=12", "", ""), http.StatusBadRequest, notParked("12"))

	wantBody(t, "park 13", ts.park(t, "13", "0.05"), http.StatusOK, bodyOK)
	wantBody(t, "kill finished", ts.put(t, "/api/kill", `{connId=13}`, ""), http.StatusBadRequest, notParked("13"))

	wantBody(t, "park 14 for no time", ts.park(t, "14", "0"), http.StatusOK, bodyOK)
	wantBody(t, "kill timeout=0", ts.put(t, "/api/kill", `connId=14`, ""), http.StatusBadRequest, notParked("14"))

	parked := ts.parkAsync(t, "15", "60")
	ts.waitListed(t, "15")
	wantBody(t, "kill 15", ts.killJSON(t, "15"), http.StatusOK, bodyOK)
	wantBody(t, "kill 15 again", ts.killJSON(t, "15"), http.StatusBadRequest, notParked("15"))
	wantBody(t, "killed 15", await(t, "15", parked), http.StatusInternalServerError, bodyKilled)

	// An id outside the park grammar cannot be parked, so it is not.
	long := strings.Repeat("9", 200)
	wantBody(t, "kill a 200-byte id", ts.killJSON(t, long), http.StatusBadRequest, notParked(long))
}

// The seed README's literal kill command, run by bash and curl: the shell
// eats the quotes and curl sends {connId=12} form-encoded. Its status
// command too.
func TestKillSeedCurlCommand(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	ts := startServer(t, testConfig())
	parked := ts.parkAsync(t, "12", "60")
	ts.waitListed(t, "12")
	curl := func(cmd string) (code int, body string) {
		t.Helper()
		cmd = strings.ReplaceAll(cmd, "http://localhost:8080", ts.base)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", "-c", cmd).Output()
		if err != nil {
			t.Fatalf("%s: %v (%q)", cmd, err, out)
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		fields := strings.Fields(head)
		if len(fields) < 2 {
			t.Fatalf("%s: no status line in %q", cmd, out)
		}
		code, _ = strconv.Atoi(fields[1])
		return code, body
	}
	code, body := curl(`curl -i 'http://localhost:8080/api/serverStatus'`)
	if es, err := orderedStrings([]byte(body)); code != http.StatusOK || err != nil || len(es) != 1 || es[0].id != "12" || len(es[0].secs) != 2 || es[0].secs > "60" {
		t.Errorf("README status command: got %d %q, want 200 {\"12\":\"60\"} or a little less", code, body)
	}
	code, body = curl(`curl -i -X PUT -d {"connId"=12} 'http://localhost:8080/api/kill'`)
	if code != http.StatusOK || body != bodyOK {
		t.Errorf("README kill command: got %d %q, want 200 %s", code, body, bodyOK)
	}
	wantBody(t, "the request killed by curl", await(t, "12", parked), http.StatusInternalServerError, bodyKilled)
}

// Kills racing deadlines: 200 requests of 0.05 s, each killed at about its
// deadline, some a little before, some a little after. Every request gets
// exactly one answer, 200 or 500, and a kill answers 200 exactly when its
// request got 500.
func TestKillRacesDeadline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const n = 200
	type result struct{ park, kill reply }
	results := make([]result, n)
	var wg sync.WaitGroup
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialRaw(t, ts.addr)
	}
	for i := range n {
		id := "race-" + strconv.Itoa(i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			results[i].park = parkOnce(t, conns[i], id, "0.05")
		}()
		go func() {
			defer wg.Done()
			// Spread the kills from 10 ms to 60 ms after the park was sent.
			time.Sleep(time.Duration(10+i%51) * time.Millisecond)
			results[i].kill = ts.killJSON(t, id)
		}()
	}
	wg.Wait()
	var oks, killed int
	for i, r := range results {
		id := "race-" + strconv.Itoa(i)
		switch {
		case r.park.code == http.StatusInternalServerError && string(r.park.body) == bodyKilled:
			killed++
			wantBody(t, "kill of "+id+" whose request got 500", r.kill, http.StatusOK, bodyOK)
		case r.park.code == http.StatusOK && string(r.park.body) == bodyOK:
			oks++
			wantBody(t, "kill of "+id+" whose request got 200", r.kill, http.StatusBadRequest, `{"status":"invalid connection Id : `+id+`"}`)
		default:
			t.Errorf("%s: got %v, want 200 %s or 500 %s", id, r.park, bodyOK, bodyKilled)
		}
	}
	t.Logf("%d answered ok, %d killed", oks, killed)
	if es := ts.status(t); len(es) != 0 {
		t.Errorf("serverStatus after every request answered: %v, want {}", es)
	}
}

// parkOnce parks on c with Connection: close and reads the one answer, then
// checks that the server closed the connection with nothing after it: a
// second answer would show up there. Errors are reported with t.Errorf, so
// it may run on a helper goroutine.
func parkOnce(t *testing.T, c *rawConn, id, timeout string) reply {
	c.SetDeadline(time.Now().Add(waitBound))
	r := reply{sent: time.Now()}
	if _, err := c.Write([]byte(getRequest(parkPath(id, timeout), "Connection: close\r\n"))); err != nil {
		t.Errorf("park %s: %v", id, err)
		return r
	}
	sent := r.sent
	r, err := readReply(c.br, http.MethodGet)
	r.sent, r.elapsed = sent, time.Since(sent)
	if err != nil {
		t.Errorf("park %s: reading the answer (%v): %v", id, r, err)
		return r
	}
	checkAnswer(t, "park "+id, http.MethodGet, r)
	if rest, err := io.ReadAll(c.br); len(rest) > 0 || err != nil {
		t.Errorf("park %s: after the answer got %q, %v; want the connection closed with nothing more", id, rest, err)
	}
	return r
}
