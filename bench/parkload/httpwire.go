package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// wireError is a constant error, so sentinels need no package-level variables.
type wireError string

func (e wireError) Error() string { return string(e) }

const (
	errMalformed = wireError("malformed HTTP response")
	errTooLarge  = wireError("HTTP response body too large")
)

// maxLine bounds a status, header or chunk-size line.
const maxLine = 16 << 10

// response is the part of an HTTP/1.x answer this tool looks at.
type response struct {
	status int
	body   []byte
	close  bool // the server closes the connection after this answer
}

// appendRequest writes an HTTP/1.1 request by hand: net/http's client would add a
// transport, pools and goroutines per connection that a load generator cannot afford.
func appendRequest(b []byte, method string, t target, path string, body []byte, closeConn bool) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, t.base...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\nUser-Agent: parkload\r\n"...)
	if closeConn {
		b = append(b, "Connection: close\r\n"...)
	}
	if body != nil || method == "PUT" || method == "POST" {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// readResponse parses one HTTP/1.x response: Content-Length, chunked, or a body
// that runs to EOF. Interim 1xx answers are skipped. io.EOF means the connection
// closed before any byte of an answer.
func readResponse(br *bufio.Reader, maxBody int) (response, error) {
	first := true
	for {
		line, err := readLine(br)
		if err != nil {
			if !first && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return response{}, err
		}
		first = false
		proto, rest, _ := strings.Cut(line, " ")
		codeStr, _, _ := strings.Cut(rest, " ")
		if !strings.HasPrefix(proto, "HTTP/1.") || len(proto) != 8 || len(codeStr) != 3 {
			return response{}, errMalformed
		}
		code, err := strconv.Atoi(codeStr)
		if err != nil || code < 100 {
			return response{}, errMalformed
		}
		resp := response{status: code}
		contentLength := int64(-1)
		chunked, keepAlive := false, false
		for {
			h, err := readLine(br)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return response{}, err
			}
			if h == "" {
				break
			}
			name, value, ok := strings.Cut(h, ":")
			if !ok || name == "" || strings.TrimSpace(name) != name {
				return response{}, errMalformed
			}
			value = strings.TrimSpace(value)
			switch strings.ToLower(name) {
			case "content-length":
				n, err := strconv.ParseInt(value, 10, 64)
				if err != nil || n < 0 || (contentLength >= 0 && n != contentLength) {
					return response{}, errMalformed
				}
				contentLength = n
			case "transfer-encoding":
				codings := strings.Split(value, ",")
				chunked = strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked")
			case "connection":
				for _, tok := range strings.Split(value, ",") {
					switch strings.ToLower(strings.TrimSpace(tok)) {
					case "close":
						resp.close = true
					case "keep-alive":
						keepAlive = true
					}
				}
			}
		}
		if code < 200 && code != 101 {
			continue
		}
		if proto == "HTTP/1.0" && !keepAlive {
			resp.close = true
		}
		switch {
		case code == 204 || code == 304 || code < 200:
		case chunked:
			resp.body, err = readChunked(br, maxBody)
		case contentLength >= 0:
			if contentLength > int64(maxBody) {
				return response{}, errTooLarge
			}
			resp.body = make([]byte, contentLength)
			_, err = io.ReadFull(br, resp.body)
		default:
			resp.close = true
			resp.body, err = io.ReadAll(io.LimitReader(br, int64(maxBody)+1))
			if err == nil && len(resp.body) > maxBody {
				err = errTooLarge
			}
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return response{}, err
		}
		return resp, nil
	}
}

// readChunked decodes a chunked body and skips its trailers.
func readChunked(br *bufio.Reader, maxBody int) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, noEOF(err)
		}
		sizeStr, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseUint(strings.TrimSpace(sizeStr), 16, 63)
		if err != nil {
			return nil, errMalformed
		}
		if size == 0 {
			for {
				t, err := readLine(br)
				if err != nil {
					return nil, noEOF(err)
				}
				if t == "" {
					return body, nil
				}
			}
		}
		if size > uint64(maxBody-len(body)) {
			return nil, errTooLarge
		}
		start := len(body)
		body = append(body, make([]byte, size)...)
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			return nil, noEOF(err)
		}
		if crlf, err := readLine(br); err != nil || crlf != "" {
			if err != nil {
				return nil, noEOF(err)
			}
			return nil, errMalformed
		}
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine returns one line without its CRLF (or bare LF). io.EOF means nothing at
// all was read; a partial line before EOF is io.ErrUnexpectedEOF.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return "", errMalformed
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(buf) > 0 {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'})
	return string(buf), nil
}

// bodyStatus returns the "status" member of a JSON object body.
func bodyStatus(body []byte) (string, bool) {
	var v struct {
		Status *string `json:"status"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Status == nil {
		return "", false
	}
	return *v.Status, true
}

// dialError marks a failure to connect, so it is reported apart from failures on an
// established connection.
type dialError struct{ err error }

func (e dialError) Error() string { return "dial: " + e.err.Error() }
func (e dialError) Unwrap() error { return e.err }

// errKind names a failure for the error tables. A run that was stopped reports
// "aborted" whatever the low-level error was.
func errKind(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "aborted"
	}
	var de dialError
	if errors.As(err, &de) {
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return "dial_refused"
		case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
			return "dial_no_port"
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
			return "dial_too_many_files"
		case errors.As(err, &ne) && ne.Timeout():
			return "dial_timeout"
		}
		return "dial_error"
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "conn_reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, io.EOF):
		return "closed_before_answer"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated_answer"
	case errors.Is(err, errMalformed):
		return "bad_response"
	case errors.Is(err, errTooLarge):
		return "body_too_large"
	}
	return "other_error"
}
