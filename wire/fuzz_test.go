package wire

// Fuzz targets check properties against deliberately simple reference
// implementations built from the standard library, not just "no panic".
// .ci/run runs each for a bounded time:
//
//	go test -run '^$' -fuzz '^FuzzParseTimeout$' -fuzztime 20s ./wire/

import (
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

var timeoutRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// refTimeout is the contract's timeout rule with exact rational
// arithmetic: the grammar, half-up rounding to the millisecond, then the
// maximum. ok is false when the timeout must be refused.
func refTimeout(s string, max time.Duration) (ms int64, ok bool) {
	if !timeoutRE.MatchString(s) {
		return 0, false
	}
	r, _ := new(big.Rat).SetString(s)
	r.Mul(r, big.NewRat(1000, 1))
	r.Add(r, big.NewRat(1, 2))
	q := new(big.Int).Quo(r.Num(), r.Denom()) // floor(x*1000 + 1/2), both positive
	if q.Cmp(big.NewInt(int64(max/time.Millisecond))) > 0 {
		return 0, false
	}
	return q.Int64(), true
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"4", "0", "0.25", "007", "000.250", "1.0005", "1.0004", "3600", "3600.0005",
		"3600.001", "9223372037", "99999999999999999999999999", ".5", "5.", "-1", "+5", "1e3", "0x10",
		" 5", "NaN", "Inf", "1,5", "1.2.3", "１", "0.9995", "59.99949999"} {
		f.Add(s, int64(time.Hour))
	}
	f.Add("1.5", int64(1500*time.Millisecond))
	f.Add("1.5", int64(1500*time.Millisecond-1))
	f.Fuzz(func(t *testing.T, s string, maxNanos int64) {
		max := time.Duration(maxNanos)
		if max <= 0 {
			max = time.Hour
		}
		got, err := ParseTimeout(s, max)
		want, ok := refTimeout(s, max)
		switch {
		case ok != (err == nil):
			t.Fatalf("ParseTimeout(%q, %v) = %v, %v; reference accepts: %v", s, max, got, err, ok)
		case ok && got != time.Duration(want)*time.Millisecond:
			t.Fatalf("ParseTimeout(%q, %v) = %v, want %dms", s, max, got, want)
		case !ok && !errors.Is(err, ErrInvalidTimeout):
			t.Fatalf("ParseTimeout(%q) error %v does not wrap ErrInvalidTimeout", s, err)
		}
	})
}

// refConnID is the connId grammar read straight off the contract.
func refConnID(s string) bool {
	if len(s) < 1 || len(s) > 128 || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl) // exactly U+0000–U+001F, U+007F–U+009F
}

func FuzzCheckConnID(f *testing.F) {
	for _, s := range []string{"12", "", strings.Repeat("x", 128), strings.Repeat("x", 129), "a\x00", "a\tb",
		"\x7f", "\u0085", "\u00a0", "\xff", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\ufffd", "ls\u2028", "</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckConnID(s)
		if want := refConnID(s); want != (err == nil) {
			t.Fatalf("CheckConnID(%q) = %v; reference accepts: %v", s, err, want)
		}
	})
}

// refQueryValues splits like net/url but only on '&' (a connId may hold a
// ';') and decodes each part with url.QueryUnescape, which is strict.
func refQueryValues(raw, key string) ([]string, error) {
	var vals []string
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		if name != key {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, err
		}
		vals = append(vals, val)
	}
	return vals, nil
}

func FuzzParsePark(f *testing.F) {
	for _, q := range []string{"connId=12&timeout=4", "timeout=0.25&connId=a+b", "connId=a;b&timeout=1",
		"connId=%zz&timeout=1", "connId=1&connId=2&timeout=1", "connId=&timeout=1", "connId=%C3%A9&timeout=007",
		"x=%zz&connId=1&timeout=1", "%zz=1&connId=1&timeout=1", "connId=1&timeout=1.2.3", "&&connId=1&&timeout=2&",
		"connId=1&timeout=5&then=200:90,503:9,reset:1", "connId=1&timeout=5&jitter=0.5&body=1000&drip=1",
		"connId=1&timeout=3599&jitter=1&drip=0.001", "connId=1&timeout=1&body=1048577", "connId=1&timeout=1&then=reset&then=close",
		"connId=1&timeout=1&drip=&body=0"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := ParsePark([]byte(q), time.Hour)
		want, wantOK := refParsePark(q, time.Hour)
		if wantOK != (err == nil) || wantOK && !samePark(got, want) {
			t.Fatalf("ParsePark(%q) = %+v %+v, %v; reference: %+v %+v, ok %v", q, got, got.Shape, err, want, want.Shape, wantOK)
		}
	})
}

// refParsePark is the park query read straight off docs/API.md with the
// reference parsers: one connId, one timeout, at most one of each section-6
// parameter, and the sums of timeout, jitter and drip within max.
func refParsePark(q string, max time.Duration) (Park, bool) {
	vals := map[string][]string{}
	for _, key := range []string{"connId", "timeout", "then", "jitter", "body", "drip"} {
		v, err := refQueryValues(q, key)
		if err != nil {
			return Park{}, false
		}
		vals[key] = v
	}
	if len(vals["connId"]) != 1 || len(vals["timeout"]) != 1 || !refConnID(vals["connId"][0]) {
		return Park{}, false
	}
	ms, ok := refTimeout(vals["timeout"][0], max)
	if !ok {
		return Park{}, false
	}
	p := Park{ConnID: vals["connId"][0], Timeout: time.Duration(ms) * time.Millisecond}
	if vals["then"] == nil && vals["jitter"] == nil && vals["body"] == nil && vals["drip"] == nil {
		return p, true
	}
	for _, key := range []string{"then", "jitter", "body", "drip"} {
		if len(vals[key]) > 1 {
			return Park{}, false
		}
	}
	p.Shape = &Shape{}
	if v := vals["then"]; v != nil {
		if p.Shape.Then, ok = refThen(v[0]); !ok {
			return Park{}, false
		}
	}
	if v := vals["jitter"]; v != nil {
		ms, ok := refTimeout(v[0], max-p.Timeout)
		if !ok {
			return Park{}, false
		}
		p.Shape.Jitter = time.Duration(ms) * time.Millisecond
	}
	if v := vals["body"]; v != nil {
		n, ok := new(big.Int).SetString(v[0], 10)
		if !ok || !bodyRE.MatchString(v[0]) || n.Cmp(big.NewInt(1<<20)) > 0 {
			return Park{}, false
		}
		p.Shape.Body = int(n.Int64())
	}
	if v := vals["drip"]; v != nil {
		ms, ok := refTimeout(v[0], max-p.Timeout-p.Shape.Jitter)
		if !ok {
			return Park{}, false
		}
		p.Shape.Drip = time.Duration(ms) * time.Millisecond
	}
	return p, true
}

var bodyRE = regexp.MustCompile(`^[0-9]+$`)

func samePark(a, b Park) bool {
	if a.ConnID != b.ConnID || a.Timeout != b.Timeout || (a.Shape == nil) != (b.Shape == nil) {
		return false
	}
	return a.Shape == nil || a.Shape.Then.String() == b.Shape.Then.String() && a.Shape.Jitter == b.Shape.Jitter &&
		a.Shape.Body == b.Shape.Body && a.Shape.Drip == b.Shape.Drip
}

var thenRE = regexp.MustCompile(`^([2-5][0-9][0-9]|reset|close|garbage|truncate)(:([0-9]+))?$`)

// refThen is the then grammar with a regular expression and big numbers:
// 1 to 16 entries of ACTION[:WEIGHT], weights from 1 to 1,000,000.
func refThen(s string) (Then, bool) {
	entries := strings.Split(s, ",")
	if len(entries) > 16 {
		return Then{}, false
	}
	var t Then
	for _, e := range entries {
		m := thenRE.FindStringSubmatch(e)
		if m == nil {
			return Then{}, false
		}
		w := big.NewInt(1)
		if m[2] != "" {
			w, _ = new(big.Int).SetString(m[3], 10)
		}
		if w.Sign() <= 0 || w.Cmp(big.NewInt(1_000_000)) > 0 {
			return Then{}, false
		}
		var a Action
		switch m[1] {
		case "reset":
			a = ActionReset
		case "close":
			a = ActionClose
		case "garbage":
			a = ActionGarbage
		case "truncate":
			a = ActionTruncate
		default:
			code, _ := strconv.Atoi(m[1])
			a = Action(code)
		}
		if a.IsStatus() != (len(m[1]) == 3) || a == 0 {
			return Then{}, false
		}
		t.entries = append(t.entries, weighted{a, uint32(w.Int64())})
		t.total += w.Uint64()
	}
	return t, true
}

func FuzzParseThen(f *testing.F) {
	for _, s := range []string{"200", "503:9", "200:90,503:9,reset:1", "close,garbage,truncate", "", ",", "200,",
		"199", "600", "0200", "200:0", "200:1000000", "200:1000001", "200:0001", strings.Repeat("reset,", 16) + "close",
		"RESET", " 200", "200:1:1", "reset:99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseThen(s)
		want, ok := refThen(s)
		switch {
		case ok != (err == nil):
			t.Fatalf("ParseThen(%q) = %v, %v; reference accepts: %v", s, got, err, ok)
		case ok && got.String() != want.String():
			t.Fatalf("ParseThen(%q) = %v, reference %v", s, got, want)
		case !ok && !errors.Is(err, ErrInvalidThen):
			t.Fatalf("ParseThen(%q): error %v does not wrap ErrInvalidThen", s, err)
		}
	})
}

// FuzzKillForms: whatever the connId, every accepted form of a kill request
// built from it names exactly it.
func FuzzKillForms(f *testing.F) {
	for _, s := range []string{"12", "a b", "a+b", "a&b=c", `q"uote`, `{"connId":1}`, "100%", "é😀", "}", "=", "\"12\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if strings.TrimSpace(id) == "" {
			return // an empty id counts as none; blanks are trimmed from the braced form
		}
		quotedJSON, _ := json.Marshal(id)
		esc := url.QueryEscape(id)
		forms := []struct{ name, query, body string }{
			{"json", "", `{"connId":` + string(quotedJSON) + `}`},
			{"form", "", "connId=" + esc},
			{"query", "connId=" + esc, ""},
			{"query and json", "connId=" + esc, `{"connId":` + string(quotedJSON) + `}`},
			{"braced", "", "{connId=" + esc + "}"},
			{"braced quoted", "", `{"connId"="` + esc + `"}`},
		}
		for _, form := range forms {
			if strings.HasPrefix(form.name, "json") || strings.HasSuffix(form.name, "json") {
				if !utf8.ValidString(id) {
					continue // JSON cannot carry invalid UTF-8; such an id is refused at park anyway
				}
			}
			k, err := ParseKill([]byte(form.query), []byte(form.body))
			if got := k.ConnID; err != nil || got != id {
				t.Fatalf("%s form (query %q, body %q) = %q, %v; want %q", form.name, form.query, form.body, k.ConnID, err, id)
			}
		}
	})
}

// FuzzKillConnID: any query and body, against encoding/json and net/url
// where those can judge: a valid JSON object without repeated keys must
// name what encoding/json reads; a successful answer is never empty; an
// error is always one of the package's sentinels.
func FuzzKillConnID(f *testing.F) {
	for _, c := range [][2]string{{"", `{"connId":12}`}, {"", `{connId=12}`}, {"", `{"connId"=12}`}, {"connId=1", ""},
		{"", "connId=1"}, {"connId=1", `{"connId":2}`}, {"", `{"connId":null}`}, {"", `{"connId":1.50}`}, {"", `{"connId":`},
		{"", `{"a":{"connId":1},"connId":"x"}`}, {"", `{"connId":1,"connId":1}`}, {"", "{connId=\"a%20b\"}"}} {
		f.Add(c[0], c[1])
	}
	sentinels := []error{ErrMalformedEscape, ErrNoConnID, ErrUnreadableBody, ErrConflictingConnIDs, ErrInvalidThen, ErrConflictingThens}
	f.Fuzz(func(t *testing.T, query, body string) {
		k, err := ParseKill([]byte(query), []byte(body))
		got := k.ConnID
		if err == nil && got == "" {
			t.Fatalf("KillConnID(%q, %q) succeeded with an empty id", query, body)
		}
		if err != nil && !isOneOf(err, sentinels) {
			t.Fatalf("KillConnID(%q, %q): error %v wraps no sentinel", query, body, err)
		}
		if query != "" || !json.Valid([]byte(body)) || hasRepeatedKey(body) {
			return
		}
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&obj) != nil || obj == nil {
			return
		}
		if _, ok := obj["then"]; ok {
			return // FuzzKillThen judges a then
		}
		var want string
		switch v := obj["connId"].(type) {
		case string:
			want = v
		case json.Number:
			want = v.String()
		case nil:
		default:
			if !errors.Is(err, ErrUnreadableBody) {
				t.Fatalf("KillConnID(%q) = %q, %v; want ErrUnreadableBody for a connId of type %T", body, got, err, v)
			}
			return
		}
		if want == "" {
			if !errors.Is(err, ErrNoConnID) {
				t.Fatalf("KillConnID(%q) = %q, %v; want ErrNoConnID", body, got, err)
			}
		} else if err != nil || got != want {
			t.Fatalf("KillConnID(%q) = %q, %v; encoding/json reads %q", body, got, err, want)
		}
	})
}

// FuzzKillThen: whatever the then text, every form that carries one gives
// what ParseThen reads of it, or its error; two different texts conflict.
func FuzzKillThen(f *testing.F) {
	for _, s := range []string{"reset", "503", "200:90,503:9,reset:1", "", "nope", "200:0", "a&b", "close"} {
		f.Add(s, "503")
	}
	f.Fuzz(func(t *testing.T, then, other string) {
		want, wantErr := ParseThen(then)
		quoted, _ := json.Marshal(then)
		esc := url.QueryEscape(then)
		forms := []struct{ name, query, body string }{
			{"json", "", `{"connId":12,"then":` + string(quoted) + `}`},
			{"form", "", "connId=12&then=" + esc},
			{"query", "connId=12&then=" + esc, ""},
			{"query and form", "then=" + esc, "connId=12&then=" + esc},
		}
		for _, form := range forms {
			if form.name == "json" && !utf8.ValidString(then) {
				continue // JSON cannot carry invalid UTF-8
			}
			k, err := ParseKill([]byte(form.query), []byte(form.body))
			switch {
			case wantErr != nil && !errors.Is(err, ErrInvalidThen):
				t.Fatalf("%s form of then %q: %+v, %v; want ErrInvalidThen (%v)", form.name, then, k, err, wantErr)
			case wantErr == nil && (err != nil || k.ConnID != "12" || k.Then.String() != want.String()):
				t.Fatalf("%s form of then %q: %+v, %v; want then %v", form.name, then, k, err, want)
			}
		}
		if then != other {
			_, err := ParseKill([]byte("then="+url.QueryEscape(other)), []byte("connId=12&then="+esc))
			if !errors.Is(err, ErrConflictingThens) {
				t.Fatalf("then %q in the query and %q in the body: %v, want ErrConflictingThens", other, then, err)
			}
		}
	})
}

func isOneOf(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// hasRepeatedKey reports whether the top-level JSON object repeats a key,
// which encoding/json would silently resolve to the last value.
func hasRepeatedKey(body string) bool {
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		k, _ := tok.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

// FuzzAppendString: the same bytes as encoding/json, and valid JSON that
// decodes back to the string (invalid UTF-8 aside, which becomes U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "12", `q"uote`, `back\slash`, "</script>", "ls\u2028ps\u2029", "\x00\x1f\x7f", "\xff", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		want, _ := json.Marshal(s)
		if string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != strings.ToValidUTF8(s, "\ufffd") && utf8.ValidString(s) {
			t.Fatalf("AppendString(%q) = %s does not decode back: %q, %v", s, got, back, err)
		}
	})
}
