package wire

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParsePark(t *testing.T) {
	const max = time.Hour
	long := strings.Repeat("x", 128)
	tests := []struct {
		query   string
		id      string
		timeout time.Duration
		err     error
	}{
		{"connId=12&timeout=4", "12", 4 * time.Second, nil},
		{"timeout=4&connId=12", "12", 4 * time.Second, nil},
		{"connId=12&timeout=0", "12", 0, nil},
		{"connId=12&timeout=0.25", "12", 250 * time.Millisecond, nil},
		{"connId=12&timeout=007", "12", 7 * time.Second, nil},
		{"connId=12&timeout=000.250", "12", 250 * time.Millisecond, nil},
		{"connId=12&timeout=1.0004", "12", time.Second, nil},
		{"connId=12&timeout=1.0005", "12", 1001 * time.Millisecond, nil},
		{"connId=12&timeout=0.9995", "12", time.Second, nil},
		{"connId=12&timeout=3600", "12", time.Hour, nil},
		{"connId=12&timeout=3600.0004", "12", time.Hour, nil},
		{"connId=12&timeout=3600.0005", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=3600.001", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=3601", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=9223372037", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=99999999999999999999999999", "", 0, ErrInvalidTimeout},
		{"connId=a+b&timeout=1", "a b", time.Second, nil},
		{"connId=a%2Bb&timeout=1", "a+b", time.Second, nil},
		{"connId=a;b&timeout=1", "a;b", time.Second, nil},
		{"connId=%C3%A9&timeout=1", "é", time.Second, nil},
		{"connId=" + long + "&timeout=1", long, time.Second, nil},
		{"connId=12&timeout=1&other=%zz", "12", time.Second, nil}, // values of other keys are not read
		{"connId=12&timeout=1&%zz=1", "", 0, ErrMalformedEscape},
		{"connId=1%2&timeout=1", "", 0, ErrMalformedEscape},
		{"connId=1%&timeout=1", "", 0, ErrMalformedEscape},
		{"timeout=1", "", 0, ErrInvalidConnID},
		{"connId=&timeout=1", "", 0, ErrInvalidConnID},
		{"connId&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=1&connId=1&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=" + long + "x&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%00&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%09b&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%7F&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%C2%85&timeout=1", "", 0, ErrInvalidConnID}, // U+0085, a C1 control
		{"connId=a%FF&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%E2%82&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%C0%AF&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=a%ED%A0%80&timeout=1", "", 0, ErrInvalidConnID},
		{"connId=12", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=1&timeout=1", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=-1", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=%2B5", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=+5", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=1e3", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=0x10", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=%205", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=.5", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=5.", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=NaN", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=Inf", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=1,5", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=1.2.3", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=5s", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=1_0", "", 0, ErrInvalidTimeout},
		{"connId=12&timeout=%EF%BC%95", "", 0, ErrInvalidTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p, err := ParsePark([]byte(tt.query), max)
			if !errors.Is(err, tt.err) || err == nil && (p.ConnID != tt.id || p.Timeout != tt.timeout) {
				t.Fatalf("ParsePark(%q) = %+v, %v; want {%q %v}, %v", tt.query, p, err, tt.id, tt.timeout, tt.err)
			}
			if err != nil && !strings.Contains(err.Error(), ": ") {
				t.Errorf("error %q has no sentence for the user", err)
			}
		})
	}
}

func TestParseKillConnID(t *testing.T) {
	tests := []struct {
		name, query, body string
		want              string
		err               error
	}{
		{"json number", "", `{"connId":12}`, "12", nil},
		{"json string", "", `{"connId":"12"}`, "12", nil},
		{"json number literal", "", `{"connId":1.50}`, "1.50", nil},
		{"json big number", "", `{"connId":1234567890123456789012345}`, "1234567890123456789012345", nil},
		{"json spaces", "", " \n{ \"connId\" : 12 }\n", "12", nil},
		{"json other keys", "", `{"x":[1,{"connId":9}],"connId":"a"}`, "a", nil},
		{"json escaped", "", `{"connId":"a\"b\u00e9"}`, "a\"bé", nil},
		{"json repeated same", "", `{"connId":12,"connId":"12"}`, "12", nil},
		{"json repeated different", "", `{"connId":12,"connId":13}`, "", ErrConflictingConnIDs},
		{"json null", "", `{"connId":null}`, "", ErrNoConnID},
		{"json empty", "", `{"connId":""}`, "", ErrNoConnID},
		{"json empty with query", "connId=7", `{"connId":""}`, "7", nil},
		{"json bool", "", `{"connId":true}`, "", ErrUnreadableBody},
		{"json object", "", `{"connId":{}}`, "", ErrUnreadableBody},
		{"json without connId", "", `{"id":12}`, "", ErrNoConnID},
		{"json truncated", "", `{"connId":`, "", ErrUnreadableBody},
		{"json trailing data", "", `{"connId":12} x`, "", ErrUnreadableBody},
		{"seed brace", "", `{connId=12}`, "12", nil},
		{"seed brace quoted key", "", `{"connId"=12}`, "12", nil},
		{"seed brace quoted value", "", `{connId="12"}`, "12", nil},
		{"seed brace both quoted", "", `{"connId"="12"}`, "12", nil},
		{"seed brace spaces", "", `{ connId = 12 }`, "12", nil},
		{"seed brace escaped", "", `{connId=a%20b}`, "a b", nil},
		{"seed brace no connId", "", `{id=12}`, "", ErrUnreadableBody},
		{"form", "", `connId=12`, "12", nil},
		{"form escaped", "", `connId=a%26b%3Dc`, "a&b=c", nil},
		{"form other keys", "", `x=1&connId=12&y`, "12", nil},
		{"form malformed", "", `connId=%zz`, "", ErrUnreadableBody},
		{"form without connId", "", `id=12`, "", ErrNoConnID},
		{"query", "connId=12", "", "12", nil},
		{"query malformed", "connId=%z", "", "", ErrMalformedEscape},
		{"query and body same", "connId=12", `{"connId":12}`, "12", nil},
		{"query and body different", "connId=13", `{"connId":12}`, "", ErrConflictingConnIDs},
		{"query repeated different", "connId=1&connId=2", "", "", ErrConflictingConnIDs},
		{"nothing", "", "", "", ErrNoConnID},
		{"blank body", "", " \r\n", "", ErrNoConnID},
		{"bare number", "", "12", "", ErrNoConnID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKill([]byte(tt.query), []byte(tt.body))
			if !errors.Is(err, tt.err) || k.ConnID != tt.want || !k.Then.IsZero() {
				t.Fatalf("ParseKill(%q, %q) = %+v, %v; want %q, %v", tt.query, tt.body, k, err, tt.want, tt.err)
			}
			if errors.Is(err, ErrNoConnID) || errors.Is(err, ErrUnreadableBody) {
				if !strings.Contains(err.Error(), "connId=12") {
					t.Errorf("error %q does not name the accepted forms", err)
				}
			}
		})
	}
}

func TestParseThen(t *testing.T) {
	tests := []struct {
		in   string
		want string // the list written back with every weight; "" for an error
	}{
		{"200", "200:1"},
		{"503", "503:1"},
		{"599", "599:1"},
		{"reset", "reset:1"},
		{"close,garbage,truncate", "close:1,garbage:1,truncate:1"},
		{"200:90,503:9,reset:1", "200:90,503:9,reset:1"},
		{"200:007", "200:7"},
		{"200:1000000", "200:1000000"},
		{"200:0001000000", "200:1000000"},
		{strings.Repeat("200,", 15) + "200", strings.Repeat("200:1,", 15) + "200:1"},
		{"", ""},
		{",", ""},
		{"200,", ""},
		{",200", ""},
		{"200,,503", ""},
		{"199", ""},
		{"600", ""},
		{"0200", ""},
		{"20", ""},
		{"2xx", ""},
		{"RESET", ""},
		{"Reset", ""},
		{" reset", ""},
		{"reset ", ""},
		{"abort", ""},
		{"200:0", ""},
		{"200:", ""},
		{"200:-1", ""},
		{"200:+1", ""},
		{"200:1.5", ""},
		{"200:1000001", ""},
		{"200:99999999999999999999", ""},
		{"200:1:2", ""},
		{":1", ""},
		{strings.Repeat("200,", 16) + "200", ""},
	}
	for _, tt := range tests {
		got, err := ParseThen(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseThen(%q) = %v, want an error", tt.in, got)
		case tt.want == "" && !errors.Is(err, ErrInvalidThen):
			t.Errorf("ParseThen(%q): %v does not wrap ErrInvalidThen", tt.in, err)
		case tt.want == "" && !strings.Contains(err.Error(), "reset, close, garbage or truncate"):
			t.Errorf("ParseThen(%q): %q does not name the accepted forms", tt.in, err)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("ParseThen(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// A draw follows the weights, and a single entry needs none.
func TestThenDraw(t *testing.T) {
	th, err := ParseThen("200:90,503:9,reset:1")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[Action]int{}
	const n = 100_000
	for range n {
		counts[th.Draw(r)]++
	}
	for a, share := range map[Action]float64{200: 0.90, 503: 0.09, ActionReset: 0.01} {
		if got := float64(counts[a]) / n; got < share*0.9 || got > share*1.1 {
			t.Errorf("%v drawn %.4f of the time, want about %.2f", a, got, share)
		}
	}
	if len(counts) != 3 {
		t.Errorf("drew %v, want only 200, 503 and reset", counts)
	}
	one, _ := ParseThen("garbage")
	if a, ok := one.Only(); !ok || a != ActionGarbage || one.Draw(nil) != ActionGarbage {
		t.Errorf("a single entry: Only %v %v, want garbage without a draw", a, ok)
	}
	if (Then{}).Draw(nil) != 0 {
		t.Errorf("the zero Then drew something")
	}
}

func TestParseParkShape(t *testing.T) {
	const max = time.Hour
	then := func(s string) Then { th, _ := ParseThen(s); return th }
	tests := []struct {
		query string
		shape *Shape // nil: none expected
		err   error
	}{
		{"connId=1&timeout=5", nil, nil},
		{"connId=1&timeout=5&then=503", &Shape{Then: then("503")}, nil},
		{"connId=1&timeout=5&then=200%3A90%2C503%3A9%2Creset%3A1", &Shape{Then: then("200:90,503:9,reset:1")}, nil},
		{"connId=1&timeout=5&then=200:90,503:9,reset:1", &Shape{Then: then("200:90,503:9,reset:1")}, nil},
		{"connId=1&timeout=5&jitter=0.5", &Shape{Jitter: 500 * time.Millisecond}, nil},
		{"connId=1&timeout=5&body=1000&drip=1", &Shape{Body: 1000, Drip: time.Second}, nil},
		{"connId=1&timeout=5&body=0", &Shape{}, nil},
		{"connId=1&timeout=5&body=1048576", &Shape{Body: 1 << 20}, nil},
		{"connId=1&timeout=0&drip=120", &Shape{Drip: 120 * time.Second}, nil},
		{"connId=1&timeout=3000&jitter=600", &Shape{Jitter: 600 * time.Second}, nil},
		{"connId=1&timeout=3000&jitter=300&drip=300", &Shape{Jitter: 300 * time.Second, Drip: 300 * time.Second}, nil},
		{"connId=1&timeout=5&other=1", nil, nil},
		{"connId=1&timeout=5&then=", nil, ErrInvalidThen},
		{"connId=1&timeout=5&then=nope", nil, ErrInvalidThen},
		{"connId=1&timeout=5&then=503&then=503", nil, ErrInvalidThen},
		{"connId=1&timeout=5&then=%zz", nil, ErrMalformedEscape},
		{"connId=1&timeout=5&jitter=", nil, ErrInvalidJitter},
		{"connId=1&timeout=5&jitter=-1", nil, ErrInvalidJitter},
		{"connId=1&timeout=5&jitter=.5", nil, ErrInvalidJitter},
		{"connId=1&timeout=5&jitter=1&jitter=1", nil, ErrInvalidJitter},
		{"connId=1&timeout=3000&jitter=600.001", nil, ErrInvalidJitter},
		{"connId=1&timeout=5&body=", nil, ErrInvalidBody},
		{"connId=1&timeout=5&body=-1", nil, ErrInvalidBody},
		{"connId=1&timeout=5&body=1048577", nil, ErrInvalidBody},
		{"connId=1&timeout=5&body=1e3", nil, ErrInvalidBody},
		{"connId=1&timeout=5&body=1&body=1", nil, ErrInvalidBody},
		{"connId=1&timeout=5&drip=", nil, ErrInvalidDrip},
		{"connId=1&timeout=5&drip=1s", nil, ErrInvalidDrip},
		{"connId=1&timeout=5&drip=1&drip=2", nil, ErrInvalidDrip},
		{"connId=1&timeout=3000&jitter=300&drip=300.001", nil, ErrInvalidDrip},
		{"connId=1&timeout=3600&drip=0.001", nil, ErrInvalidDrip},
	}
	for _, tt := range tests {
		p, err := ParsePark([]byte(tt.query), max)
		switch {
		case !errors.Is(err, tt.err):
			t.Errorf("ParsePark(%q): %v, want %v", tt.query, err, tt.err)
		case err != nil:
			if !strings.Contains(err.Error(), ": ") {
				t.Errorf("ParsePark(%q): %q has no sentence for the user", tt.query, err)
			}
		case (p.Shape == nil) != (tt.shape == nil):
			t.Errorf("ParsePark(%q) shape %+v, want %+v", tt.query, p.Shape, tt.shape)
		case p.Shape != nil && (p.Shape.Then.String() != tt.shape.Then.String() || p.Shape.Jitter != tt.shape.Jitter ||
			p.Shape.Body != tt.shape.Body || p.Shape.Drip != tt.shape.Drip):
			t.Errorf("ParsePark(%q) shape %+v, want %+v", tt.query, *p.Shape, *tt.shape)
		}
	}
}

func TestParseKillThen(t *testing.T) {
	tests := []struct {
		name, query, body string
		want              string // the then list written back; "" none
		err               error
	}{
		{"json string", "", `{"connId":12,"then":"reset"}`, "reset:1", nil},
		{"json number", "", `{"connId":12,"then":503}`, "503:1", nil},
		{"json weighted", "", `{"connId":"12","then":"200:90,503:9,reset:1"}`, "200:90,503:9,reset:1", nil},
		{"json null", "", `{"connId":12,"then":null}`, "", nil},
		{"json bool", "", `{"connId":12,"then":true}`, "", ErrInvalidThen},
		{"json empty", "", `{"connId":12,"then":""}`, "", ErrInvalidThen},
		{"json repeated different", "", `{"connId":12,"then":"reset","then":"close"}`, "", ErrConflictingThens},
		{"json number 503.0", "", `{"connId":12,"then":503.0}`, "503:1", nil},
		{"json number 5.03e2", "", `{"connId":12,"then":5.03e2}`, "503:1", nil},
		{"json number 503.5", "", `{"connId":12,"then":503.5}`, "", ErrInvalidThen},
		{"form", "", "connId=12&then=reset", "reset:1", nil},
		{"form escaped", "", "connId=12&then=200%3A1%2Creset", "200:1,reset:1", nil},
		{"query", "connId=12&then=503", "", "503:1", nil},
		{"query with json body", "then=503", `{"connId":12}`, "503:1", nil},
		{"query and json same", "then=503", `{"connId":12,"then":503}`, "503:1", nil},
		{"query and json different", "then=503", `{"connId":12,"then":"reset"}`, "", ErrConflictingThens},
		{"query and form different", "then=close", "connId=12&then=reset", "", ErrConflictingThens},
		{"query empty", "connId=12&then=", "", "", ErrInvalidThen},
		{"unknown action", "connId=12&then=abort", "", "", ErrInvalidThen},
		{"seed brace carries none", "", `{connId=12&then=reset}`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKill([]byte(tt.query), []byte(tt.body))
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseKill(%q, %q) = %+v, %v; want %v", tt.query, tt.body, k, err, tt.err)
			}
			if err == nil && (k.ConnID != "12" || k.Then.String() != tt.want) {
				t.Fatalf("ParseKill(%q, %q) = %q then %q; want 12 then %q", tt.query, tt.body, k.ConnID, k.Then.String(), tt.want)
			}
		})
	}
	for _, tt := range []struct {
		query, want string
		err         error
	}{
		{"", "", nil}, {"then=reset", "reset:1", nil}, {"then=reset&then=reset", "reset:1", nil},
		{"then=reset&then=503", "", ErrConflictingThens}, {"then=", "", ErrInvalidThen}, {"then=%z", "", ErrMalformedEscape},
		{"connId=1&then=close", "close:1", nil},
	} {
		th, err := ThenOf([]byte(tt.query))
		if !errors.Is(err, tt.err) || err == nil && th.String() != tt.want {
			t.Errorf("ThenOf(%q) = %v, %v; want %q, %v", tt.query, th, err, tt.want, tt.err)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "12", `q"uote`, `back\slash`, "ünï-€-😀", "</script>", "a&b=c", "sp ace",
		"ls\u2028ps\u2029", "\x00\x01\x1f\x7f", "\n\r\t", "\xff\xfe", "a\xe2\x82", "\u0085", "\ufffd",
	} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendStringAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], `a "quoted" </script> ü`) })
	if allocs != 0 {
		t.Errorf("AppendString allocated %v times, want 0", allocs)
	}
}
