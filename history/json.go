package history

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/parkd/parkd/wire"
)

// rfc3339Millis is RFC 3339 with exactly three decimals, in UTC.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// AppendJSON writes r as GET /api/history shows it (docs/API.md, section
// 7); durationMs is the difference of the two times as they are written.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"connId":`...)
	b = wire.AppendString(b, r.ConnID)
	b = append(b, `,"outcome":`...)
	b = wire.AppendString(b, r.Outcome)
	b = append(b, `,"then":`...)
	if r.Then == "" {
		b = append(b, "null"...)
	} else {
		b = wire.AppendString(b, r.Then)
	}
	b = append(b, `,"code":`...)
	if r.Code == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(r.Code), 10)
	}
	b = append(b, `,"timeoutMs":`...)
	b = strconv.AppendInt(b, r.Timeout.Milliseconds(), 10)
	b = append(b, `,"startedAt":"`...)
	b = r.Started.UTC().AppendFormat(b, rfc3339Millis)
	b = append(b, `","endedAt":"`...)
	b = r.Ended.UTC().AppendFormat(b, rfc3339Millis)
	b = append(b, `","durationMs":`...)
	b = strconv.AppendInt(b, r.Ended.UnixMilli()-r.Started.UnixMilli(), 10)
	b = append(b, `,"bytesSent":`...)
	b = strconv.AppendInt(b, r.BytesSent, 10)
	b = append(b, `,"remoteAddr":`...)
	b = wire.AppendString(b, r.RemoteAddr)
	b = append(b, `,"instance":`...)
	b = wire.AppendString(b, r.Instance)
	return append(b, '}')
}

// ParseJSON reads a record that AppendJSON wrote.
func ParseJSON(b []byte) (Record, error) {
	var v struct {
		ConnID     string  `json:"connId"`
		Outcome    string  `json:"outcome"`
		Then       *string `json:"then"`
		Code       *int    `json:"code"`
		TimeoutMs  int64   `json:"timeoutMs"`
		StartedAt  string  `json:"startedAt"`
		EndedAt    string  `json:"endedAt"`
		BytesSent  int64   `json:"bytesSent"`
		RemoteAddr string  `json:"remoteAddr"`
		Instance   string  `json:"instance"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Record{}, err
	}
	started, err := time.Parse(rfc3339Millis, v.StartedAt)
	if err != nil {
		return Record{}, err
	}
	ended, err := time.Parse(rfc3339Millis, v.EndedAt)
	if err != nil {
		return Record{}, err
	}
	r := Record{ConnID: v.ConnID, Outcome: v.Outcome, Timeout: time.Duration(v.TimeoutMs) * time.Millisecond,
		Started: started, Ended: ended, BytesSent: v.BytesSent, RemoteAddr: v.RemoteAddr, Instance: v.Instance}
	if v.Then != nil {
		r.Then = *v.Then
	}
	if v.Code != nil {
		r.Code = *v.Code
	}
	return r, nil
}
