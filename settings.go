package main

import "time"

// fasthttp settings; README.md says why each has its value.
const (
	// readTimeout bounds reading one request (a client that sends half a
	// request line and stalls is cut off) and, on a new connection, the
	// wait for its first byte.
	readTimeout = 10 * time.Second
	// writeTimeout bounds writing one answer to a client that reads nothing.
	writeTimeout = 10 * time.Second
	// readBufferSize is the most a request line plus headers may take.
	readBufferSize = 8 << 10
	// maxBodySize is the contract's limit on a kill body; parkd's other
	// routes take none.
	maxBodySize = 4 << 10
	// idleRelease is how long nothing must be parked before memory goes
	// back to the OS (releaseWhenIdle).
	idleRelease = 2 * time.Second
	// afterDrainTimeout bounds closing keep-alive connections once nothing
	// is parked any more. fasthttp counts a connection it has served for
	// under 5 s as busy, so those take the whole of it.
	afterDrainTimeout = 500 * time.Millisecond
)

// reservedFiles is what the default capacity leaves of the open-file limit
// for everything but parked requests: status, kill, health and metrics
// connections, the listener, logs.
func reservedFiles(limit int) int {
	return max(64, limit/20)
}

// releaseWait bounds how long a killed request's answer waits for its
// connId to be released in cluster mode (docs/API.md: an answer never
// waits on Redis for more than 25 ms).
const releaseWait = 25 * time.Millisecond

// attachWait bounds how long a kill that came between the park handler
// and fasthttp's hijack waits for the killed request's answer to be
// written: the hijack comes microseconds later, this is a safety bound
// below the 1 s a kill from another instance waits for its owner.
const attachWait = 500 * time.Millisecond

// Lingering close bounds: after an error answer sent before the request
// was read in full, parkd reads and drops what the client still sends for
// at most lingerTime in all, lingerIdle between two reads and lingerBytes
// in all, as nginx's lingering_time and lingering_timeout do.
const (
	lingerTime  = 10 * time.Second
	lingerIdle  = 2 * time.Second
	lingerBytes = 16 << 20
)
