package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// KillForms names the accepted ways to give a kill request's connId; error
// sentences end with it.
const KillForms = `give the connId as JSON {"connId":12} or {"connId":"12"}, ` +
	`as {connId=12} (what curl -d {"connId"=12} sends), as a form body connId=12, ` +
	`or in the query string /api/kill?connId=12`

// Kill is what a kill request asks for.
type Kill struct {
	ConnID string
	Then   Then // what the killed request gets; zero: a 500
}

// ParseKill reads PUT /api/kill's raw query string and body, whatever the
// body's Content-Type. The connId may be given
//   - in a JSON object {"connId":12} or {"connId":"12"}, a number taken as
//     its literal text;
//   - as the seed's {connId=12} or {"connId"=12}, the value optionally in
//     double quotes;
//   - in a form body connId=12, or the query string ?connId=12.
//
// An empty connId counts as none; the same value given twice is fine,
// different values are ErrConflictingConnIDs. No value at all is
// ErrNoConnID. A then list may come with it in the JSON object ("then", a
// string or a number), the form body or the query string — not in the
// seed's braced form —, under the same rule: different values are
// ErrConflictingThens; an empty or malformed one is ErrInvalidThen.
func ParseKill(rawQuery, body []byte) (Kill, error) {
	fromQuery, err := killValues(rawQuery)
	if err != nil {
		return Kill{}, err
	}
	fromBody, err := bodyKillValues(body)
	if err != nil {
		return Kill{}, err
	}
	id := ""
	for _, v := range append(fromQuery.ids, fromBody.ids...) {
		switch {
		case v == "":
		case id == "":
			id = v
		case v != id:
			return Kill{}, fmt.Errorf("%w: the request names connId %s and connId %s; name one",
				ErrConflictingConnIDs, quoteForMessage(id), quoteForMessage(v))
		}
	}
	if id == "" {
		return Kill{}, fmt.Errorf("%w: no connId found; %s", ErrNoConnID, KillForms)
	}
	k := Kill{ConnID: id}
	thens := append(fromQuery.thens, fromBody.thens...)
	for _, v := range thens {
		if v != thens[0] {
			return Kill{}, fmt.Errorf("%w: the request gives then %s and then %s; give one",
				ErrConflictingThens, quoteForMessage(thens[0]), quoteForMessage(v))
		}
	}
	if len(thens) > 0 {
		if k.Then, err = ParseThen(thens[0]); err != nil {
			return Kill{}, err
		}
	}
	return k, nil
}

// ThenOf reads the then list of a query string, such as that of
// DELETE /api/requests/{connId}?then=reset: the zero Then when none is
// given; given twice, the values must agree.
func ThenOf(rawQuery []byte) (Then, error) {
	vals, err := queryValues(rawQuery, "then")
	if err != nil || len(vals) == 0 {
		return Then{}, err
	}
	for _, v := range vals {
		if v != vals[0] {
			return Then{}, fmt.Errorf("%w: the request gives then %s and then %s; give one",
				ErrConflictingThens, quoteForMessage(vals[0]), quoteForMessage(v))
		}
	}
	return ParseThen(vals[0])
}

// killFields are the connId and then values one place of a kill gives.
type killFields struct{ ids, thens []string }

// killValues reads the connId and then values of a query or form body.
func killValues(raw []byte) (killFields, error) {
	var kf killFields
	err := eachValue(raw, func(key string, v []byte) error {
		val, err := unescape(v)
		if key == "connId" {
			kf.ids = append(kf.ids, val)
		} else {
			kf.thens = append(kf.thens, val)
		}
		return err
	}, "connId", "then")
	return kf, err
}

// bodyKillValues returns every connId and then value a kill body gives.
func bodyKillValues(body []byte) (killFields, error) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return killFields{}, nil
	case body[0] != '{':
		kf, err := killValues(body)
		if err != nil {
			return killFields{}, fmt.Errorf("%w: the body is not a form: %v; %s", ErrUnreadableBody, err, KillForms)
		}
		return kf, nil
	}
	kf, jsonErr := jsonKillValues(body)
	if jsonErr == nil {
		return kf, nil
	}
	if ids, ok := braceConnIDs(body); ok {
		return killFields{ids: ids}, nil
	}
	if errors.Is(jsonErr, ErrUnreadableBody) || errors.Is(jsonErr, ErrInvalidThen) {
		return killFields{}, jsonErr
	}
	return killFields{}, fmt.Errorf("%w: the body is neither JSON nor {connId=ID}; %s", ErrUnreadableBody, KillForms)
}

// jsonKillValues reads a JSON object and returns every value of its
// "connId" and "then" keys: a key may repeat, which encoding/json would
// hide by keeping the last.
func jsonKillValues(body []byte) (killFields, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{' seen by the caller
		return killFields{}, err
	}
	var kf killFields
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return killFields{}, err
		}
		key, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return killFields{}, err
		}
		if key != "connId" && key != "then" {
			continue
		}
		var text string
		switch v := v.(type) {
		case nil: // null gives nothing
			continue
		case string:
			text = v
		case json.Number:
			text = v.String()
			if key == "then" {
				text = integral(v)
			}
		case bool, map[string]any, []any:
			if key == "then" {
				return killFields{}, fmt.Errorf("%w: JSON then must be a string or a number; give %s", ErrInvalidThen, thenGrammar)
			}
			return killFields{}, fmt.Errorf("%w: JSON connId must be a string or a number; %s", ErrUnreadableBody, KillForms)
		}
		if key == "connId" {
			kf.ids = append(kf.ids, text)
		} else {
			kf.thens = append(kf.thens, text)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return killFields{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return killFields{}, errors.New("data after the JSON object")
	}
	return kf, nil
}

// braceConnIDs reads the seed's form, {connId=12} or {"connId"=12}: the
// inside of the braces as a form body whose keys and values may be wrapped
// in double quotes. ok is false when no pair names connId.
func braceConnIDs(body []byte) (ids []string, ok bool) {
	if len(body) < 2 || body[len(body)-1] != '}' {
		return nil, false
	}
	inner := body[1 : len(body)-1]
	for len(inner) > 0 {
		var pair []byte
		pair, inner, _ = bytes.Cut(inner, []byte{'&'})
		k, v, hasEq := bytes.Cut(pair, []byte{'='})
		if !hasEq {
			continue
		}
		key, err := unescape(unquote(k))
		if err != nil || key != "connId" {
			continue
		}
		val, err := unescape(unquote(v))
		if err != nil {
			return nil, false
		}
		ids = append(ids, val)
	}
	return ids, len(ids) > 0
}

// unquote trims blanks, then one pair of surrounding double quotes.
func unquote(b []byte) []byte {
	b = bytes.Trim(b, " \t")
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	return b
}

// integral writes a JSON number that is a whole number, such as 503.0 or
// 5.03e2, as its digits; any other number as it is.
func integral(n json.Number) string {
	if i, err := n.Int64(); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return n.String()
}
