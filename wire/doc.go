// Package wire reads and writes parkd's API on the wire: the query of a park
// request, the connId of a kill request in any of its accepted forms, and
// JSON strings. It knows nothing of HTTP servers, so parkd and its net/http
// twin under bench/ share one reading of the API (docs/API.md).
//
// Every function is pure and safe for concurrent use. Errors wrap one of the
// package's sentinel errors with a sentence meant for the API's user.
package wire
