package history

import (
	"strconv"
	"strings"
)

// ID is an event's id: one or two whole numbers, written joined by a dash
// ("17", "1733112000000-3"). Ids grow in the order events happened, and
// compare part by part as numbers; a missing second part counts as 0.
type ID struct {
	Major, Minor uint64
	HasMinor     bool // written with its second part
}

// Less reports whether id comes before other.
func (id ID) Less(other ID) bool {
	if id.Major != other.Major {
		return id.Major < other.Major
	}
	return id.Minor < other.Minor
}

// IsZero reports whether id is the zero ID, which comes before every
// event.
func (id ID) IsZero() bool { return id == ID{} }

// AppendText writes id as the API writes it.
func (id ID) AppendText(b []byte) []byte {
	b = strconv.AppendUint(b, id.Major, 10)
	if id.HasMinor {
		b = append(b, '-')
		b = strconv.AppendUint(b, id.Minor, 10)
	}
	return b
}

func (id ID) String() string { return string(id.AppendText(nil)) }

// ParseID reads an id written as AppendText writes it; ok is false for
// anything else.
func ParseID(s string) (id ID, ok bool) {
	major, minor, dash := strings.Cut(s, "-")
	var err error
	if id.Major, err = strconv.ParseUint(major, 10, 64); err != nil || !digits(major) {
		return ID{}, false
	}
	if dash {
		if id.Minor, err = strconv.ParseUint(minor, 10, 64); err != nil || !digits(minor) {
			return ID{}, false
		}
		id.HasMinor = true
	}
	return id, true
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
