package main

import (
	"fmt"
	"strconv"
)

// Soak verdicts.
const (
	soakPass = "PASS"
	soakFail = "FAIL"
)

// violationKind names one way the server broke the contract. Its values are the
// keys of soak_violations and soak_violation_examples in the report.
type violationKind string

// Violation kinds, grouped by the check of the verdict they fail (see soakCheck).
const (
	// one_answer_each
	violConflict409     violationKind = "conflict_409"     // a park answered 409, though every connId is new
	violOtherAnswer     violationKind = "other_answer"     // a park answered neither 200 ok, 500 killed, 409 nor 503
	violDuplicateAnswer violationKind = "duplicate_answer" // a second answer, or bytes after the one answer
	violEarlyOK         violationKind = "early_ok"         // 200 ok before its timeout had run since the write
	violHangupAnswered  violationKind = "hangup_answered"  // bytes other than a 503 after the client's half-close

	// kills_match
	violKilledWithoutKill violationKind = "killed_without_kill" // 500 killed, and no kill of it got 200 or an unknown answer
	violKillOKNotKilled   violationKind = "kill_ok_not_killed"  // a kill answered 200, the park ended otherwise
	violKilledTwice       violationKind = "killed_twice"        // two kills of one park answered 200
	violKillBadAnswer     violationKind = "kill_bad_answer"     // a kill answered neither 200 ok nor 400 invalid connection Id

	// nothing_lost
	violLostAnswer       violationKind = "lost_answer"        // a park ended without its answer
	violHangupNotClosed  violationKind = "hangup_not_closed"  // no close within slack after a half-close
	violCloseNotHonoured violationKind = "close_not_honoured" // no close within slack after a closing answer
	violRequestFailed    violationKind = "request_failed"     // a request could not be written, or its answer read

	violStatusNotEmpty  violationKind = "status_not_empty" // status_empty_at_end: serverStatus not {} within emptyWait
	violServerNotIdle   violationKind = "server_not_idle"  // server_idle: /metrics unreadable, or not back to its baseline
	violOutcomeMismatch violationKind = "outcome_mismatch" // outcomes_agree: the server's outcome counters differ from the clients'

	// responses_valid
	violBadStatusBody        violationKind = "bad_status_body"        // a polled serverStatus is not an object of whole seconds
	violBadRequestsBody      violationKind = "bad_requests_body"      // /api/requests is not an array of objects with a connId
	violPipelineMismatch     violationKind = "pipeline_mismatch"      // a pipelined serverStatus or healthz answered wrong
	violStatusListsUnknown   violationKind = "status_lists_unknown"   // a listed id of this run was never parked
	violStatusListsFinished  violationKind = "status_lists_finished"  // a listed id was answered before the listing was asked for
	violStatusListsAbandoned violationKind = "status_lists_abandoned" // a listed id was hung up on over soakAbandonGrace before
)

// violate records a violation; s.mu must be held. At most 5 examples per kind.
func (s *soak) violate(kind violationKind, example string) {
	s.res.SoakViolations[kind]++
	if len(s.examples[kind]) < 5 {
		s.examples[kind] = append(s.examples[kind], example)
	}
}

// violation is violate for callers that do not hold s.mu.
func (s *soak) violation(kind violationKind, example string) {
	s.mu.Lock()
	s.violate(kind, example)
	s.mu.Unlock()
}

// short quotes the start of a body or of stray bytes for an example.
func short(b []byte) string {
	if len(b) > 120 {
		return strconv.Quote(string(b[:120])) + "…"
	}
	return strconv.Quote(string(b))
}

// soakCheck groups violation kinds into the checks of the verdict.
func soakCheck(kind violationKind) string {
	switch kind {
	case violConflict409, violOtherAnswer, violDuplicateAnswer, violEarlyOK, violHangupAnswered:
		return "one_answer_each"
	case violKilledWithoutKill, violKillOKNotKilled, violKilledTwice, violKillBadAnswer:
		return "kills_match"
	case violLostAnswer, violHangupNotClosed, violCloseNotHonoured, violRequestFailed:
		return "nothing_lost"
	case violStatusNotEmpty:
		return "status_empty_at_end"
	case violServerNotIdle:
		return "server_idle"
	case violOutcomeMismatch:
		return "outcomes_agree"
	}
	return "responses_valid" // bad bodies, pipeline mismatches, ghosts in serverStatus
}

// verdict fills the checks, totals and verdict.
func (s *soak) verdict(aborted bool) {
	res := s.res
	for _, c := range []string{"one_answer_each", "kills_match", "nothing_lost", "responses_valid", "status_empty_at_end", "server_idle", "outcomes_agree"} {
		res.SoakChecks[c] = "pass"
	}
	if !res.SoakMetricsAvailable {
		res.SoakChecks["server_idle"], res.SoakChecks["outcomes_agree"] = "skipped", "skipped"
	} else if res.SoakServerOK == nil {
		res.SoakChecks["outcomes_agree"] = "skipped"
	}
	res.SoakViolationTotal = 0
	for k, n := range res.SoakViolations {
		res.SoakChecks[soakCheck(k)] = "fail"
		res.SoakViolationTotal += n
	}
	for _, n := range res.SoakRequests {
		res.SoakRequestTotal += n
	}
	res.SoakRequestTotal += res.SoakProbes
	res.SoakVerdict = soakPass
	if aborted {
		res.SoakChecks["completed"] = "fail"
		res.SoakNotes = append(res.SoakNotes, fmt.Sprintf("aborted by max-duration or a signal: no verdict possible (%d requests cut short)", s.aborted))
		res.SoakVerdict = soakFail
	}
	if res.SoakViolationTotal > 0 {
		res.SoakVerdict = soakFail
	}
}
