package wire

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// unescape decodes one query or form component: %XX escapes, and '+' as a
// space. Unlike fasthttp's lenient parser it refuses a malformed escape, as
// the contract requires.
func unescape(s []byte) (string, error) {
	return decode(s, true)
}

// UnescapePath decodes one raw path segment, such as the connId of
// /api/requests/{connId}: %XX escapes; '+' is itself there.
func UnescapePath(segment string) (string, error) {
	return decode([]byte(segment), false)
}

func decode(s []byte, plusIsSpace bool) (string, error) {
	if bytes.IndexByte(s, '%') < 0 && (!plusIsSpace || bytes.IndexByte(s, '+') < 0) {
		return string(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+' && plusIsSpace:
			out = append(out, ' ')
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				end := min(i+3, len(s))
				return "", fmt.Errorf("%w: %q is not a %%XX escape", ErrMalformedEscape, s[i:end])
			}
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// queryValues returns the decoded values of key in a raw query or form body
// ("a=1&b=2"), in order. Only '&' separates pairs: a raw ';' belongs to the
// value, since a connId may hold one. A pair without '=' has an empty value.
// Every key is decoded, so a malformed escape anywhere is an error; values
// of other keys are not looked at.
func queryValues(raw []byte, key string) ([]string, error) {
	var vals []string
	err := eachValue(raw, func(_ string, v []byte) error {
		val, err := unescape(v)
		vals = append(vals, val)
		return err
	}, key)
	return vals, err
}

// eachValue calls f with the raw value of every pair whose decoded key is
// one of keys; other keys are decoded only to be compared.
func eachValue(raw []byte, f func(key string, value []byte) error, keys ...string) error {
	for len(raw) > 0 {
		var pair []byte
		pair, raw, _ = bytes.Cut(raw, []byte{'&'})
		if len(pair) == 0 {
			continue
		}
		k, v, _ := bytes.Cut(pair, []byte{'='})
		name, err := keyName(k, keys)
		if err != nil {
			return err
		}
		if name != "" {
			if err := f(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyName is the one of keys that k decodes to, or "". A key without
// escapes, the usual case, is compared without allocating.
func keyName(k []byte, keys []string) (string, error) {
	plain := bytes.IndexByte(k, '%') < 0 && bytes.IndexByte(k, '+') < 0
	var decoded string
	if !plain {
		var err error
		if decoded, err = unescape(k); err != nil {
			return "", err
		}
	}
	for _, key := range keys {
		if plain && string(k) == key || !plain && decoded == key {
			return key, nil
		}
	}
	return "", nil
}

// Park is what a park request asks for.
type Park struct {
	ConnID  string
	Timeout time.Duration
	Shape   *Shape // nil unless a parameter of section 6 is given
}

// ParsePark reads the raw query of GET /api/request: exactly one connId and
// exactly one timeout, each within the grammar of docs/API.md, the timeout
// at most maxTimeout, and at most one each of then, jitter, body and drip.
// Other parameters are ignored.
func ParsePark(rawQuery []byte, maxTimeout time.Duration) (Park, error) {
	var ids, timeouts, thens, jitters, bodies, drips []string
	err := eachValue(rawQuery, func(key string, v []byte) error {
		val, err := unescape(v)
		switch key {
		case "connId":
			ids = append(ids, val)
		case "timeout":
			timeouts = append(timeouts, val)
		case "then":
			thens = append(thens, val)
		case "jitter":
			jitters = append(jitters, val)
		case "body":
			bodies = append(bodies, val)
		default:
			drips = append(drips, val)
		}
		return err
	}, "connId", "timeout", "then", "jitter", "body", "drip")
	if err != nil {
		return Park{}, err
	}
	var p Park
	switch len(ids) {
	case 0:
		return Park{}, fmt.Errorf("%w: connId is missing; give connId=ID, %s", ErrInvalidConnID, connIDGrammar)
	case 1:
		if err := CheckConnID(ids[0]); err != nil {
			return Park{}, err
		}
		p.ConnID = ids[0]
	default:
		return Park{}, fmt.Errorf("%w: connId is given %d times; give it once", ErrInvalidConnID, len(ids))
	}
	switch len(timeouts) {
	case 0:
		return Park{}, fmt.Errorf("%w: timeout is missing; give timeout=SECONDS, %s", ErrInvalidTimeout, timeoutGrammar(maxTimeout))
	case 1:
		if p.Timeout, err = ParseTimeout(timeouts[0], maxTimeout); err != nil {
			return Park{}, err
		}
	default:
		return Park{}, fmt.Errorf("%w: timeout is given %d times; give it once", ErrInvalidTimeout, len(timeouts))
	}
	if p.Shape, err = parseShape(thens, jitters, bodies, drips, p.Timeout, maxTimeout); err != nil {
		return Park{}, err
	}
	return p, nil
}

// quoteForMessage shows a user's value in an error sentence, shortened.
func quoteForMessage(s string) string {
	if len(s) > 40 {
		s = strings.ToValidUTF8(s[:40], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}
