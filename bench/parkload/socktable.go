package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// The server's side of one of this tool's loopback connections, as the
// kernel's socket table (/proc/net/tcp, /proc/net/tcp6; Linux) shows it:
// whether the server has closed it, and what it still has to send, even
// while the client reads nothing.

// sockRow is one socket of the table.
type sockRow struct {
	state   string // ESTABLISHED, FIN_WAIT1, …
	txQueue int64  // bytes queued to send and not yet acknowledged
}

// tcpStates names the kernel's TCP states (include/net/tcp_states.h).
func tcpState(code uint64) string {
	names := []string{1: "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}
	if code > 0 && code < uint64(len(names)) {
		return names[code]
	}
	return "STATE_" + strconv.FormatUint(code, 16)
}

// errNoSocketTable: the kernel's socket table cannot be read here.
const errNoSocketTable = wireError("no /proc/net/tcp")

// peerSocket finds the server's side of conn: the socket whose local
// address is conn's remote one and whose peer is conn's local one. A
// connection the server has closed and the kernel has freed is "gone".
func peerSocket(conn net.Conn) (sockRow, error) {
	local, ok1 := conn.LocalAddr().(*net.TCPAddr)
	remote, ok2 := conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return sockRow{}, errNoSocketTable
	}
	file := "/proc/net/tcp"
	if remote.IP.To4() == nil {
		file = "/proc/net/tcp6"
	}
	f, err := os.Open(file)
	if err != nil {
		return sockRow{}, fmt.Errorf("%w: %v", errNoSocketTable, err)
	}
	defer f.Close()
	return findSocket(f, procAddr(remote), procAddr(local))
}

// findSocket reads a socket table for the row from local to remote,
// both written as the table writes them.
func findSocket(r io.Reader, local, remote string) (sockRow, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<16)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue …
		f := strings.Fields(sc.Text())
		if len(f) < 5 || !strings.EqualFold(f[1], local) || !strings.EqualFold(f[2], remote) {
			continue
		}
		st, err1 := strconv.ParseUint(f[3], 16, 8)
		tx, _, _ := strings.Cut(f[4], ":")
		q, err2 := strconv.ParseInt(tx, 16, 64)
		if err := errors.Join(err1, err2); err != nil {
			return sockRow{}, fmt.Errorf("socket table row %q: %w", sc.Text(), err)
		}
		return sockRow{state: tcpState(st), txQueue: q}, nil
	}
	if err := sc.Err(); err != nil {
		return sockRow{}, err
	}
	return sockRow{state: "gone"}, nil
}

// procAddr writes an address as /proc/net/tcp does: each 32-bit word of
// the address, as the machine's byte order reads it, in hex, then the port.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		ip = a.IP.To16()
	}
	var b strings.Builder
	for i := 0; i+4 <= len(ip); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(ip[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", a.Port)
	return b.String()
}
