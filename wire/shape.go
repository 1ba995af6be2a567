package wire

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Action is how a parked request ends: an answer with a status code
// (200–599), or one of the connection-level endings below. The zero
// Action means none was given: the default of where it is used.
type Action uint16

// The connection-level endings; status codes are their own values.
const (
	ActionReset    Action = iota + 1 // TCP RST, nothing written
	ActionClose                      // FIN, nothing written
	ActionGarbage                    // bytes that are not HTTP, then FIN
	ActionTruncate                   // headers, less than half of the body, then FIN
)

var actionWords = [...]string{ActionReset: "reset", ActionClose: "close", ActionGarbage: "garbage", ActionTruncate: "truncate"}

// IsStatus reports whether a is a status code.
func (a Action) IsStatus() bool { return 200 <= a && a <= 599 }

// String is a as the API writes it: "503", "reset", …; "" for none.
func (a Action) String() string {
	switch {
	case a.IsStatus():
		return strconv.Itoa(int(a))
	case 0 < a && int(a) < len(actionWords):
		return actionWords[a]
	}
	return ""
}

// MaxThenEntries is the most entries a then list may have.
const MaxThenEntries = 16

// MaxThenWeight is the largest weight of a then entry.
const MaxThenWeight = 1_000_000

const thenGrammar = "ACTION[:WEIGHT],... with 1 to 16 entries; ACTION is a status code 200-599, " +
	"reset, close, garbage or truncate; WEIGHT is a whole number from 1 to 1000000 (default 1)"

// Then is a weighted choice of actions, of which each request draws one.
// The zero Then is "not given".
type Then struct {
	entries []weighted
	total   uint64
}

type weighted struct {
	action Action
	weight uint32
}

// IsZero reports whether t was not given.
func (t Then) IsZero() bool { return len(t.entries) == 0 }

// Only is t's action when it has a single entry: no draw needed.
func (t Then) Only() (Action, bool) {
	if len(t.entries) == 1 {
		return t.entries[0].action, true
	}
	return 0, false
}

// Draw picks an action with probability proportional to its weight; the
// zero Then draws the zero Action. r is the caller's source: a
// rand.Rand is not safe for concurrent use.
func (t Then) Draw(r *rand.Rand) Action {
	if a, ok := t.Only(); ok || t.IsZero() {
		return a
	}
	n := r.Uint64N(t.total)
	for _, e := range t.entries {
		if n < uint64(e.weight) {
			return e.action
		}
		n -= uint64(e.weight)
	}
	return t.entries[len(t.entries)-1].action // not reached: n < total
}

// String writes t back in the grammar, every weight shown.
func (t Then) String() string {
	parts := make([]string, len(t.entries))
	for i, e := range t.entries {
		parts[i] = e.action.String() + ":" + strconv.FormatUint(uint64(e.weight), 10)
	}
	return strings.Join(parts, ",")
}

// ParseThen reads a then list: ACTION[:WEIGHT],... (1 to 16 entries,
// weights 1–1,000,000, default 1).
func ParseThen(s string) (Then, error) {
	fail := func(why string) (Then, error) {
		return Then{}, fmt.Errorf("%w: then %s %s; give %s", ErrInvalidThen, quoteForMessage(s), why, thenGrammar)
	}
	if s == "" {
		return fail("is empty")
	}
	n := strings.Count(s, ",") + 1
	if n > MaxThenEntries {
		return fail(fmt.Sprintf("has %d entries", n))
	}
	t := Then{entries: make([]weighted, 0, n)}
	for entry := range strings.SplitSeq(s, ",") {
		word, weight, hasWeight := strings.Cut(entry, ":")
		a, ok := parseAction(word)
		switch {
		case entry == "":
			return fail("has an empty entry")
		case !ok:
			return fail(fmt.Sprintf("has the unknown action %s", quoteForMessage(word)))
		}
		w := uint64(1)
		if hasWeight {
			w, ok = parseWeight(weight)
			if !ok {
				return fail(fmt.Sprintf("has the weight %s", quoteForMessage(weight)))
			}
		}
		t.entries = append(t.entries, weighted{a, uint32(w)})
		t.total += w
	}
	return t, nil
}

// parseAction reads a status code of three digits from 200 to 599, or
// the name of a connection-level ending.
func parseAction(s string) (Action, bool) {
	if len(s) == 3 && allDigits(s) {
		code := int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
		return Action(code), Action(code).IsStatus()
	}
	for a, w := range actionWords {
		if w != "" && s == w {
			return Action(a), true
		}
	}
	return 0, false
}

// parseWeight reads a whole number from 1 to MaxThenWeight; leading zeros
// are allowed, as in a timeout.
func parseWeight(s string) (uint64, bool) {
	if !allDigits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if s == "" || len(s) > 7 {
		return 0, false
	}
	w, _ := strconv.ParseUint(s, 10, 64)
	return w, w <= MaxThenWeight
}

// MaxBody is the largest body a park may ask its answer to be padded to.
const MaxBody = 1 << 20

// Shape is what the parameters of section 6 of docs/API.md ask of a park:
// what its deadline brings, how its deadline varies, and how its answer's
// body goes out. A park without any of them has no Shape (a nil pointer).
type Shape struct {
	Then   Then          // what the deadline brings; zero: a 200
	Jitter time.Duration // the deadline is drawn from [timeout, timeout+Jitter]
	Body   int           // pad the body with spaces to this many bytes
	Drip   time.Duration // send the body over this long after the deadline
}

// parseShape reads the section-6 parameters of a park, given once each at
// most: then, jitter (the timeout grammar), body (0–1,048,576) and drip
// (the timeout grammar). timeout + jitter, and timeout + jitter + drip,
// may not be above max.
func parseShape(thens, jitters, bodies, drips []string, timeout, max time.Duration) (*Shape, error) {
	if thens == nil && jitters == nil && bodies == nil && drips == nil {
		return nil, nil
	}
	sh := &Shape{}
	once := func(vals []string, name string, sentinel error) (string, bool, error) {
		switch len(vals) {
		case 0:
			return "", false, nil
		case 1:
			return vals[0], true, nil
		}
		return "", false, fmt.Errorf("%w: %s is given %d times; give it once", sentinel, name, len(vals))
	}
	v, ok, err := once(thens, "then", ErrInvalidThen)
	if err != nil {
		return nil, err
	}
	if ok {
		if sh.Then, err = ParseThen(v); err != nil {
			return nil, err
		}
	}
	if v, ok, err = once(jitters, "jitter", ErrInvalidJitter); err != nil {
		return nil, err
	} else if ok {
		if sh.Jitter, err = seconds(v, "jitter", max-timeout, ErrInvalidJitter); err != nil {
			return nil, err
		}
	}
	if v, ok, err = once(bodies, "body", ErrInvalidBody); err != nil {
		return nil, err
	} else if ok {
		n, good := parseBody(v)
		if !good {
			return nil, fmt.Errorf("%w: body %s is not a whole number of bytes from 0 to %d", ErrInvalidBody, quoteForMessage(v), MaxBody)
		}
		sh.Body = n
	}
	if v, ok, err = once(drips, "drip", ErrInvalidDrip); err != nil {
		return nil, err
	} else if ok {
		if sh.Drip, err = seconds(v, "drip", max-timeout-sh.Jitter, ErrInvalidDrip); err != nil {
			return nil, err
		}
	}
	return sh, nil
}

// seconds reads a duration of the timeout grammar that may be at most
// room, what the maximum leaves after the timeout (and the jitter).
func seconds(s, name string, room time.Duration, sentinel error) (time.Duration, error) {
	d, err := ParseTimeout(s, time.Duration(1<<62))
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s is not decimal seconds such as 4, 0 or 0.25 (digits, optionally a dot and more digits)",
			sentinel, name, quoteForMessage(s))
	}
	if d > room {
		return 0, fmt.Errorf("%w: %s %s takes the request past the maximum timeout, which leaves %ss for it",
			sentinel, name, quoteForMessage(s), strconv.FormatFloat(max(room, 0).Seconds(), 'f', -1, 64))
	}
	return d, nil
}

// parseBody reads a whole number of bytes from 0 to MaxBody.
func parseBody(s string) (int, bool) {
	if !allDigits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 7 {
		return 0, false
	}
	n, _ := strconv.Atoi("0" + s)
	return n, n <= MaxBody
}
