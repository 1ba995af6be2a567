package wire

import (
	"encoding/json"
	"errors"
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

func TestKillConnID(t *testing.T) {
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
			got, err := KillConnID([]byte(tt.query), []byte(tt.body))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("KillConnID(%q, %q) = %q, %v; want %q, %v", tt.query, tt.body, got, err, tt.want, tt.err)
			}
			if errors.Is(err, ErrNoConnID) || errors.Is(err, ErrUnreadableBody) {
				if !strings.Contains(err.Error(), "connId=12") {
					t.Errorf("error %q does not name the accepted forms", err)
				}
			}
		})
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
