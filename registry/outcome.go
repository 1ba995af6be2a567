package registry

// Outcome is how a parked request ended. Each parked request gets exactly
// one.
type Outcome uint8

const (
	// OK: the timeout elapsed.
	OK Outcome = iota + 1
	// Killed: Registry.Kill named it.
	Killed
	// Abandoned: its client went away (Entry.Abandon).
	Abandoned
	// Shutdown: Registry.Shutdown found its deadline beyond the grace period.
	Shutdown
)

var outcomeNames = [...]string{OK: "ok", Killed: "killed", Abandoned: "abandoned", Shutdown: "shutdown"}

// String is the outcome's name as logs and metrics show it.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return "unknown"
}
