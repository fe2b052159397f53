package scenario

import "fmt"

// Open files the load generator keeps for itself (and, in-process, for the
// server's NATS, JetStream, store and listeners) before counting sockets.
const (
	reserveFiles          = 128
	reserveFilesInProcess = 512
)

// clampByFiles limits n items of perItem open files each to what the
// open-file limit allows after reserve. It returns the n to use and, when it
// had to lower it, a message saying so. An unknown limit (0) clamps nothing.
func clampByFiles(what string, n, perItem int, reserve int) (int, string) {
	limit, _ := RaiseNoFile()
	if limit == 0 || limit > 1<<30 {
		return n, ""
	}
	most := (int(limit) - reserve) / perItem
	if n <= most {
		return n, ""
	}
	most = max(most, 1)
	return most, fmt.Sprintf("%d %s need about %d open files (%d each + %d reserved) but RLIMIT_NOFILE is %d (hard limit, raised): using %d; raise the hard limit (ulimit -Hn) for more",
		n, what, n*perItem+reserve, perItem, reserve, limit, most)
}
