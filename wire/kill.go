package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// KillForms names the accepted ways to give a kill request's connId; error
// sentences end with it.
const KillForms = `give the connId as JSON {"connId":12} or {"connId":"12"}, ` +
	`as {connId=12} (what curl -d {"connId"=12} sends), as a form body connId=12, ` +
	`or in the query string /api/kill?connId=12`

// KillConnID finds the connId of PUT /api/kill in its raw query string and
// its body, whatever the body's Content-Type:
//   - a JSON object {"connId":12} or {"connId":"12"}, a number taken as its
//     literal text;
//   - the seed's {connId=12} or {"connId"=12}, the value optionally in
//     double quotes;
//   - a form body connId=12, or the query string ?connId=12.
//
// An empty value counts as none; the same value given twice is fine,
// different values are ErrConflictingConnIDs. No value at all is ErrNoConnID.
func KillConnID(rawQuery, body []byte) (string, error) {
	fromQuery, err := queryValues(rawQuery, "connId")
	if err != nil {
		return "", err
	}
	fromBody, err := bodyConnIDs(body)
	if err != nil {
		return "", err
	}
	id := ""
	for _, v := range append(fromQuery, fromBody...) {
		switch {
		case v == "":
		case id == "":
			id = v
		case v != id:
			return "", fmt.Errorf("%w: the request names connId %s and connId %s; name one",
				ErrConflictingConnIDs, quoteForMessage(id), quoteForMessage(v))
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no connId found; %s", ErrNoConnID, KillForms)
	}
	return id, nil
}

// bodyConnIDs returns every connId value a kill body gives.
func bodyConnIDs(body []byte) ([]string, error) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return nil, nil
	case body[0] != '{':
		ids, err := queryValues(body, "connId")
		if err != nil {
			return nil, fmt.Errorf("%w: the body is not a form: %v; %s", ErrUnreadableBody, err, KillForms)
		}
		return ids, nil
	}
	ids, jsonErr := jsonConnIDs(body)
	if jsonErr == nil {
		return ids, nil
	}
	if ids, ok := braceConnIDs(body); ok {
		return ids, nil
	}
	if errors.Is(jsonErr, ErrUnreadableBody) {
		return nil, jsonErr
	}
	return nil, fmt.Errorf("%w: the body is neither JSON nor {connId=ID}; %s", ErrUnreadableBody, KillForms)
}

// jsonConnIDs reads a JSON object and returns every value of its "connId"
// keys: a key may repeat, which encoding/json would hide by keeping the last.
func jsonConnIDs(body []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{' seen by the caller
		return nil, err
	}
	var ids []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if key != "connId" {
			continue
		}
		switch v := v.(type) {
		case nil: // null names no connId
		case string:
			ids = append(ids, v)
		case json.Number:
			ids = append(ids, v.String())
		default:
			return nil, fmt.Errorf("%w: JSON connId must be a string or a number; %s", ErrUnreadableBody, KillForms)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return ids, nil
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
