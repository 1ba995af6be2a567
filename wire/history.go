package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidHistoryQuery: a history query's connId, outcome or limit is
// outside its grammar, or given twice.
var ErrInvalidHistoryQuery = errors.New("invalid history query")

// historyOutcomes names the outcomes a history query may select.
const historyOutcomes = "ok, killed, abandoned, shutdown"

// DefaultHistoryLimit is how many records a history query returns when it
// names no limit.
const DefaultHistoryLimit = 100

// HistoryQuery is what GET /api/history asks for.
type HistoryQuery struct {
	ConnID  string // "" for any
	Outcome string // "" for any
	Limit   int    // at least 1
}

// ParseHistoryQuery reads the raw query of GET /api/history: at most one
// each of connId (the park grammar), outcome (ok, killed, abandoned or
// shutdown) and limit (a positive whole number; 100 by default, and any
// number larger than what is kept gives all of it). Other parameters are
// ignored.
func ParseHistoryQuery(rawQuery []byte) (HistoryQuery, error) {
	vals := map[string][]string{}
	err := eachValue(rawQuery, func(key string, v []byte) error {
		val, err := unescape(v)
		vals[key] = append(vals[key], val)
		return err
	}, "connId", "outcome", "limit")
	if err != nil {
		return HistoryQuery{}, err
	}
	q := HistoryQuery{Limit: DefaultHistoryLimit}
	for key, vs := range vals {
		if len(vs) > 1 {
			return HistoryQuery{}, fmt.Errorf("%w: %s is given %d times; give it once", ErrInvalidHistoryQuery, key, len(vs))
		}
	}
	if v, ok := vals["connId"]; ok {
		if err := CheckConnID(v[0]); err != nil {
			return HistoryQuery{}, fmt.Errorf("%w: %w", ErrInvalidHistoryQuery, err)
		}
		q.ConnID = v[0]
	}
	if v, ok := vals["outcome"]; ok {
		switch v[0] {
		case "ok", "killed", "abandoned", "shutdown":
		default:
			return HistoryQuery{}, fmt.Errorf("%w: outcome %s is not one of %s", ErrInvalidHistoryQuery,
				quoteForMessage(v[0]), historyOutcomes)
		}
		q.Outcome = v[0]
	}
	if v, ok := vals["limit"]; ok {
		n, good := parseLimit(v[0])
		if !good {
			return HistoryQuery{}, fmt.Errorf("%w: limit %s is not a whole number of 1 or more", ErrInvalidHistoryQuery, quoteForMessage(v[0]))
		}
		q.Limit = n
	}
	return q, nil
}

// parseLimit reads a positive whole number; one too large for an int is
// the largest int, which gives everything kept.
func parseLimit(s string) (int, bool) {
	if !allDigits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return int(^uint(0) >> 1), true
	}
	return n, true
}
