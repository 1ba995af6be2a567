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
)
