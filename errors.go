package main

import (
	"errors"
	"net"
	"strconv"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// Errors of parkd's own; wire's and the registry's sentinels are mapped
// alongside them in writeError.
var (
	errUnknownConnID    = errors.New("invalid connection Id")
	errRequestNotParked = errors.New("request not parked")
	errRouteNotFound    = errors.New("route not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errBodyTooLarge     = errors.New("body too large")
	errHeaderTooLarge   = errors.New("request header too large")
	errRequestTimeout   = errors.New("request timeout")
	errMalformedHTTP    = errors.New("malformed HTTP request")
	// Cluster mode's: the owner of a request did not answer a forwarded
	// kill; the shared view cannot be reached.
	errInstanceUnreachable = errors.New("instance unreachable")
	errClusterUnavailable  = errors.New("cluster store unreachable")
)

// writeJSON and writeJSONString set a whole JSON answer.
func writeJSON(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

func writeJSONString(ctx *fasthttp.RequestCtx, code int, body string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(body)
}

// userError carries a sentinel and the sentence the client is shown.
type userError struct {
	sentinel error
	msg      string
}

func (e userError) Error() string { return e.msg }
func (e userError) Unwrap() error { return e.sentinel }

func withMessage(sentinel error, msg string) error { return userError{sentinel, msg} }

// writeError is the one place an error becomes an HTTP answer: a status
// code and a JSON object with "status" and, where useful, "error". An
// error it does not know becomes a bare 500: Go's error strings never
// reach the client.
func (s *server) writeError(ctx *fasthttp.RequestCtx, err error) {
	code, status, msg := fasthttp.StatusInternalServerError, "error", "internal error"
	switch {
	case errors.Is(err, wire.ErrMalformedEscape), errors.Is(err, wire.ErrInvalidConnID),
		errors.Is(err, wire.ErrInvalidTimeout), errors.Is(err, wire.ErrNoConnID),
		errors.Is(err, wire.ErrUnreadableBody), errors.Is(err, wire.ErrConflictingConnIDs),
		errors.Is(err, wire.ErrInvalidThen), errors.Is(err, wire.ErrConflictingThens),
		errors.Is(err, wire.ErrInvalidJitter), errors.Is(err, wire.ErrInvalidBody), errors.Is(err, wire.ErrInvalidDrip),
		errors.Is(err, wire.ErrInvalidHistoryQuery):
		code, msg = fasthttp.StatusBadRequest, err.Error()
	case errors.Is(err, errUnknownConnID):
		// The seed's sentence is the status itself.
		code, status, msg = fasthttp.StatusBadRequest, err.Error(), ""
	case errors.Is(err, registry.ErrDuplicate), errors.Is(err, cluster.ErrTaken):
		code, msg = fasthttp.StatusConflict, err.Error()
	case errors.Is(err, errInstanceUnreachable):
		code, msg = fasthttp.StatusServiceUnavailable, err.Error()
	case errors.Is(err, errClusterUnavailable), errors.Is(err, cluster.ErrUnavailable):
		code, msg = fasthttp.StatusServiceUnavailable, "cluster store unreachable"
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(err, registry.ErrFull):
		code, msg = fasthttp.StatusServiceUnavailable, err.Error()
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(err, registry.ErrShuttingDown):
		code, status, msg = fasthttp.StatusServiceUnavailable, "shutting down", ""
	case errors.Is(err, errRequestNotParked), errors.Is(err, errRouteNotFound):
		code, status, msg = fasthttp.StatusNotFound, "not found", err.Error()
	case errors.Is(err, errMethodNotAllowed):
		code, status, msg = fasthttp.StatusMethodNotAllowed, "method not allowed", err.Error()
	case errors.Is(err, errBodyTooLarge):
		code, msg = fasthttp.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, errHeaderTooLarge):
		code, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, err.Error()
	case errors.Is(err, errRequestTimeout):
		code, msg = fasthttp.StatusRequestTimeout, err.Error()
	case errors.Is(err, errMalformedHTTP):
		code, msg = fasthttp.StatusBadRequest, err.Error()
	default:
		s.log.Error("unexpected error", "err", err, "path", string(ctx.Path()))
	}
	b := make([]byte, 0, 64+len(status)+len(msg))
	b = append(b, `{"status":`...)
	b = wire.AppendString(b, status)
	if msg != "" {
		b = append(b, `,"error":`...)
		b = wire.AppendString(b, msg)
	}
	b = append(b, '}')
	writeJSON(ctx, code, b)
}

// requestError is fasthttp's ErrorHandler: a request that could not be
// read at all. fasthttp closes the connection after it; the close lingers,
// since the client may still be sending the rest (conn.go).
func (s *server) requestError(ctx *fasthttp.RequestCtx, err error) {
	if c, ok := ctx.Conn().(*clientConn); ok {
		c.lingerOnClose()
	}
	ctx.Response.Header.SetBytesV("Parkd-Instance", s.instance)
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		err = withMessage(errBodyTooLarge, "the body is larger than "+strconv.Itoa(maxBodySize)+" bytes")
	case errors.As(err, &small):
		err = withMessage(errHeaderTooLarge, "the request line and headers are larger than "+strconv.Itoa(readBufferSize)+" bytes")
	case errors.As(err, &netErr) && netErr.Timeout():
		err = withMessage(errRequestTimeout, "the request did not arrive within "+s.http.ReadTimeout.String())
	default:
		s.log.Debug("unreadable request", "err", err, "remote", ctx.RemoteAddr().String())
		err = withMessage(errMalformedHTTP, "the request is not valid HTTP/1.x")
	}
	s.writeError(ctx, err)
	s.metrics.answered(routeUnmatched, ctx.Response.StatusCode())
}
