package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// soakAbandonGrace is how long after a hang-up serverStatus may still list
// the request: the contract says one second; one more for a noisy machine.
const soakAbandonGrace = 2 * time.Second

// parkRec is what is known of one parked request of the soak.
type parkRec struct {
	kind         string
	timeoutMs    int64
	answer       string    // "" while outstanding; an answer class, or hungup, lost, unsent, aborted
	answers      int       // complete answers read for it
	endedAt      time.Time // its answer was read in full (answered requests only)
	hungUpAt     time.Time // the client hung up, or gave up on it and closed
	killsOK      int       // kills of it that answered 200
	killsUnknown int       // kills of it whose answer is unknown (failed or retried)
}

// count adds n requests of kind.
func (s *soak) count(kind string, n int) {
	s.mu.Lock()
	s.res.SoakRequests[kind] += n
	s.mu.Unlock()
}

// register notes a park before it is written, so that a poll seeing it knows it.
func (s *soak) register(id, kind string, timeoutMs int64) {
	s.mu.Lock()
	s.parks[id] = &parkRec{kind: kind, timeoutMs: timeoutMs}
	s.res.SoakRequests[kind]++
	s.mu.Unlock()
}

// soakClass is the class of a park's answer, also the keys of soak_answers.
func soakClass(r response) string {
	switch parkedKind(r) {
	case "ok":
		return "ok"
	case "killed":
		return "killed"
	}
	switch r.status {
	case 409:
		return "conflict_409"
	case 503:
		return "busy_503"
	}
	return "other"
}

// answered records a park's complete answer, read at got for a request written at sent.
func (s *soak) answered(id string, resp response, sent, got time.Time) string {
	class := soakClass(resp)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	rec.answers++
	if rec.answers > 1 {
		s.violate(violDuplicateAnswer, fmt.Sprintf("%s: answer %d: %d %s", id, rec.answers, resp.status, short(resp.body)))
	}
	rec.answer, rec.endedAt = class, got
	s.res.SoakAnswers[class]++
	switch class {
	case "ok":
		// The server cannot start the timeout before the request was written.
		if took := got.Sub(sent); took < time.Duration(rec.timeoutMs)*time.Millisecond {
			s.violate(violEarlyOK, fmt.Sprintf("%s (%s): 200 ok after %s of a %d ms timeout", id, rec.kind, took.Round(time.Millisecond), rec.timeoutMs))
		}
	case "conflict_409":
		s.violate(violConflict409, fmt.Sprintf("%s (%s): 409 %s", id, rec.kind, short(resp.body)))
	case "other":
		s.violate(violOtherAnswer, fmt.Sprintf("%s (%s): %d %s", id, rec.kind, resp.status, short(resp.body)))
	}
	return class
}

// lost records a park that ended without an answer, the client having closed its
// connection (so the server may list it for soakAbandonGrace more).
func (s *soak) lost(id, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	rec.hungUpAt = time.Now()
	if s.parent.Err() != nil {
		rec.answer = "aborted"
		s.aborted++
		return
	}
	rec.answer = "lost"
	s.res.SoakLost++
	s.violate(violLostAnswer, fmt.Sprintf("%s (%s, timeout %d ms): %s", id, rec.kind, rec.timeoutMs, why))
}

// unsent records a park that could not be written: the server never saw it whole.
func (s *soak) unsent(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	rec.hungUpAt = time.Now()
	if s.parent.Err() != nil {
		rec.answer = "aborted"
		s.aborted++
		return
	}
	rec.answer = "unsent"
	s.violate(violRequestFailed, fmt.Sprintf("park %s not sent: %v", id, err))
}

// publish adds a kill target to the pool, unless it has ended already.
func (s *soak) publish(id string) {
	s.mu.Lock()
	if rec := s.parks[id]; rec.answer == "" && !slices.Contains(s.pool, id) {
		s.pool = append(s.pool, id)
	}
	s.mu.Unlock()
}

func (s *soak) unpublishLocked(id string) {
	if i := slices.Index(s.pool, id); i >= 0 {
		s.pool[i] = s.pool[len(s.pool)-1]
		s.pool = s.pool[:len(s.pool)-1]
	}
}

// pick chooses a kill target. It leaves the pool half the time, so that two
// kills often race for one request.
func (s *soak) pick(rng *rand.Rand) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pool) == 0 {
		return "", false
	}
	id := s.pool[rng.IntN(len(s.pool))]
	if rng.IntN(2) == 0 {
		s.unpublishLocked(id)
	}
	return id, true
}

// killResult records the answer to a kill of id.
func (s *soak) killResult(id string, resp response, retried bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	if retried {
		rec.killsUnknown++ // the first try may have killed it
	}
	if err != nil {
		rec.killsUnknown++
		if s.parent.Err() == nil {
			s.res.SoakKillsUnknown++
			s.violate(violRequestFailed, fmt.Sprintf("kill %s: %s", id, errKind(s.parent, err)))
		}
		return
	}
	st, _ := bodyStatus(resp.body)
	switch {
	case resp.status == 200 && st == "ok":
		s.res.SoakKillsOK++
		rec.killsOK++
		s.unpublishLocked(id)
		if rec.killsOK > 1 {
			s.violate(violKilledTwice, fmt.Sprintf("%s: %d kills answered 200", id, rec.killsOK))
		}
	case resp.status == 400 && st == "invalid connection Id : "+id:
		s.res.SoakKillsFinished++
		if rec.answer != "" { // else not parked yet: it stays a target
			s.unpublishLocked(id)
		}
	default:
		rec.killsUnknown++
		s.res.SoakKillsUnknown++
		s.violate(violKillBadAnswer, fmt.Sprintf("kill %s: %d %s", id, resp.status, short(resp.body)))
	}
}

// ghosts checks the ids of this run that a serverStatus or /api/requests answer
// listed, for a request written at sent: none may have been answered before
// then, nor hung up on soakAbandonGrace before then.
func (s *soak) ghosts(ids []string, sent time.Time, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if !strings.HasPrefix(id, s.o.prefix) {
			continue
		}
		rec := s.parks[id]
		switch {
		case rec == nil:
			s.violate(violStatusListsUnknown, fmt.Sprintf("%s lists %s, never parked", where, id))
		case !rec.endedAt.IsZero() && rec.endedAt.Before(sent):
			s.violate(violStatusListsFinished, fmt.Sprintf("%s lists %s (%s), answered %s %s before the request", where, id, rec.kind, rec.answer, sent.Sub(rec.endedAt).Round(time.Millisecond)))
		case !rec.hungUpAt.IsZero() && sent.Sub(rec.hungUpAt) > soakAbandonGrace:
			s.violate(violStatusListsAbandoned, fmt.Sprintf("%s lists %s (%s), hung up on %s before the request", where, id, rec.kind, sent.Sub(rec.hungUpAt).Round(time.Millisecond)))
		}
	}
}

// checkStatus validates a serverStatus answer — a JSON object of strings holding
// whole seconds, never "0" — and checks the ids it lists; kind names a failure.
func (s *soak) checkStatus(resp response, sent time.Time, kind violationKind) {
	if resp.status != 200 {
		s.violation(kind, fmt.Sprintf("serverStatus answered %d %s", resp.status, short(resp.body)))
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &m); err != nil || m == nil {
		s.violation(kind, "serverStatus is not a JSON object: "+short(resp.body))
		return
	}
	ids := make([]string, 0, len(m))
	for id, raw := range m {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || v == "" || v == "0" || strings.Trim(v, "0123456789") != "" {
			s.violation(kind, fmt.Sprintf("serverStatus entry %q: %s is not whole seconds as a string", id, short(raw)))
			return
		}
		ids = append(ids, id)
	}
	s.ghosts(ids, sent, "serverStatus")
}

// checkRequests validates GET /api/requests: a JSON array of objects with a connId.
func (s *soak) checkRequests(resp response, sent time.Time) {
	var list []struct {
		ConnID *string `json:"connId"`
	}
	if resp.status != 200 || json.Unmarshal(resp.body, &list) != nil || list == nil {
		s.violation(violBadRequestsBody, fmt.Sprintf("/api/requests answered %d %s", resp.status, short(resp.body)))
		return
	}
	ids := make([]string, 0, len(list))
	for _, e := range list {
		if e.ConnID == nil {
			s.violation(violBadRequestsBody, "/api/requests entry without connId: "+short(resp.body))
			return
		}
		ids = append(ids, *e.ConnID)
	}
	s.ghosts(ids, sent, "/api/requests")
}

// crossCheck matches kills with killed answers over every park of the run.
func (s *soak) crossCheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	unconfirmed := 0
	for _, id := range slices.Sorted(maps.Keys(s.parks)) {
		rec := s.parks[id]
		switch {
		case rec.answer == "":
			if s.parent.Err() != nil {
				rec.answer = "aborted"
				s.aborted++
				continue
			}
			s.res.SoakLost++
			s.violate(violLostAnswer, fmt.Sprintf("%s (%s, timeout %d ms): never ended", id, rec.kind, rec.timeoutMs))
		case rec.answer == "killed" && rec.killsOK == 0 && rec.killsUnknown == 0:
			s.violate(violKilledWithoutKill, fmt.Sprintf("%s (%s): answered 500 killed, no kill of it answered 200", id, rec.kind))
		case rec.answer == "killed" && rec.killsOK == 0:
			unconfirmed++
		case rec.killsOK > 0 && rec.answer != "killed" && rec.answer != "aborted":
			s.violate(violKillOKNotKilled, fmt.Sprintf("%s (%s): a kill answered 200, the park ended %s", id, rec.kind, rec.answer))
		}
	}
	if unconfirmed > 0 {
		s.res.SoakNotes = append(s.res.SoakNotes, fmt.Sprintf("%d killed answers match a kill whose own answer was lost", unconfirmed))
	}
}
