package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxConnIDLen is the longest connId, in bytes, after URL-decoding.
const MaxConnIDLen = 128

const connIDGrammar = "1 to 128 bytes of UTF-8 without control characters"

// CheckConnID reports whether id is a valid connId: 1 to 128 bytes of valid
// UTF-8 with no control character (U+0000–U+001F, U+007F–U+009F).
func CheckConnID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: connId is empty; it must be %s", ErrInvalidConnID, connIDGrammar)
	}
	if len(id) > MaxConnIDLen {
		return fmt.Errorf("%w: connId is %d bytes long; it must be %s", ErrInvalidConnID, len(id), connIDGrammar)
	}
	for i, r := range id {
		switch {
		case r == utf8.RuneError && !validRuneAt(id, i):
			return fmt.Errorf("%w: connId is not valid UTF-8 at byte %d; it must be %s", ErrInvalidConnID, i, connIDGrammar)
		case r <= 0x1F || 0x7F <= r && r <= 0x9F:
			return fmt.Errorf("%w: connId holds the control character %U at byte %d; it must be %s", ErrInvalidConnID, r, i, connIDGrammar)
		}
	}
	return nil
}

// validRuneAt tells a real U+FFFD from the RuneError of an invalid sequence.
func validRuneAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 3
}

func timeoutGrammar(max time.Duration) string {
	return "decimal seconds such as 4, 0 or 0.25 (digits, optionally a dot and more digits), at most " +
		strconv.FormatFloat(max.Seconds(), 'f', -1, 64)
}

// maxTimeoutDigits bounds the integer part we compute with: 10^12 s is far
// above the largest time.Duration, so a longer one is too large for sure and
// the millisecond arithmetic below cannot overflow.
const maxTimeoutDigits = 12

// ParseTimeout reads a timeout of the grammar DIGITS [ "." DIGITS ] as
// decimal seconds, rounds it half-up to the millisecond and refuses it if
// it is then above max.
func ParseTimeout(s string, max time.Duration) (time.Duration, error) {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if !allDigits(intPart) || hasDot && !allDigits(frac) {
		return 0, fmt.Errorf("%w: timeout %s is not %s", ErrInvalidTimeout, quoteForMessage(s), timeoutGrammar(max))
	}
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) > maxTimeoutDigits {
		return 0, tooLarge(s, max)
	}
	var ms int64
	for i := 0; i < len(intPart); i++ {
		ms = ms*10 + int64(intPart[i]-'0')
	}
	ms *= 1000
	for i, scale := 0, int64(100); i < 3 && i < len(frac); i, scale = i+1, scale/10 {
		ms += int64(frac[i]-'0') * scale
	}
	if len(frac) > 3 && frac[3] >= '5' {
		ms++ // half-up: the fourth decimal alone decides
	}
	if ms > int64(max/time.Millisecond) {
		return 0, tooLarge(s, max)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func tooLarge(s string, max time.Duration) error {
	return fmt.Errorf("%w: timeout %s is above the maximum of %s seconds", ErrInvalidTimeout,
		quoteForMessage(s), strconv.FormatFloat(max.Seconds(), 'f', -1, 64))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
