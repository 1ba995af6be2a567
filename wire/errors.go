package wire

import "errors"

// Sentinel errors; the functions of this package wrap them with a sentence
// that says what was wrong and what is accepted.
var (
	// ErrMalformedEscape: a %-escape in the query string or path is not %XX.
	ErrMalformedEscape = errors.New("malformed %-escape")
	// ErrInvalidConnID: a park request's connId is missing, repeated or
	// outside the grammar.
	ErrInvalidConnID = errors.New("invalid connId")
	// ErrInvalidTimeout: a park request's timeout is missing, repeated,
	// outside the grammar or above the maximum.
	ErrInvalidTimeout = errors.New("invalid timeout")
	// ErrNoConnID: a kill request names no connId in any accepted form.
	ErrNoConnID = errors.New("no connId")
	// ErrUnreadableBody: a kill request's body is neither JSON, nor the
	// seed's {connId=12} form, nor a form body.
	ErrUnreadableBody = errors.New("unreadable body")
	// ErrConflictingConnIDs: a kill request names different connIds.
	ErrConflictingConnIDs = errors.New("conflicting connIds")
	// ErrInvalidThen: a then list is outside its grammar, or a park gives
	// it twice.
	ErrInvalidThen = errors.New("invalid then")
	// ErrConflictingThens: a kill request gives different then lists.
	ErrConflictingThens = errors.New("conflicting then lists")
	// ErrInvalidJitter: a park's jitter is outside the grammar, repeated,
	// or takes the request past the maximum timeout.
	ErrInvalidJitter = errors.New("invalid jitter")
	// ErrInvalidBody: a park's body size is outside 0–1,048,576 or repeated.
	ErrInvalidBody = errors.New("invalid body size")
	// ErrInvalidDrip: a park's drip is outside the grammar, repeated, or
	// takes the request past the maximum timeout.
	ErrInvalidDrip = errors.New("invalid drip")
)
