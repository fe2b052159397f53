package node

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// ErrPortInUse is wrapped by errors about an explicitly configured address
// that is already taken.
var ErrPortInUse = errors.New("address already in use")

// pickAddr applies the default-port rule: an address the user gave that is
// taken is an error naming the flag; a default that is taken falls back to a
// free port (the caller logs the address it got).
func pickAddr(addr string, explicit bool, flag string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: bad port", flag, addr)
	}
	if port == 0 {
		return h, -1, nil // nats-server: -1 means a random port
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return h, port, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return "", 0, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	if explicit {
		return "", 0, fmt.Errorf("%s %s: %w (set another with %s)", flag, addr, ErrPortInUse, flag)
	}
	return h, -1, nil
}

// listen opens addr following the same rule.
func listen(addr string, explicit bool, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	if explicit {
		return nil, fmt.Errorf("%s %s: %w (set another with %s)", flag, addr, ErrPortInUse, flag)
	}
	h, _, _ := net.SplitHostPort(addr)
	return net.Listen("tcp", net.JoinHostPort(h, "0"))
}
