package scenario

import (
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		ws, ok bool
	}{
		{"tcp://127.0.0.1:7420", false, true},
		{"127.0.0.1:7420", false, true},
		{"ws://127.0.0.1:7480/ws", true, true},
		{"ws://localhost:7480/ws", true, true},
		{"tcp://[::1]:7420", false, true},
		{"tcp://10.0.0.1:7420", false, false},
		{"ws://example.com/ws", false, false},
		{"wss://127.0.0.1:7480/ws", false, false},
		{"http://127.0.0.1:7480", false, false},
	} {
		ws, err := checkAddr(tc.addr)
		if (err == nil) != tc.ok || ws != tc.ws {
			t.Errorf("checkAddr(%q) = %v, %v; want ws=%v ok=%v", tc.addr, ws, err, tc.ws, tc.ok)
		}
	}
	for _, tc := range []struct {
		store string
		ok    bool
	}{
		{"mysql://root@127.0.0.1:3306/db", true},
		{"mysql://u:p@localhost/db", true},
		{"mysql://root@db.example.com:3306/db", false},
		{"postgres://127.0.0.1/db", false},
	} {
		if err := checkStore(tc.store); (err == nil) != tc.ok {
			t.Errorf("checkStore(%q) = %v; want ok=%v", tc.store, err, tc.ok)
		}
	}
}

func TestClampByFiles(t *testing.T) {
	if n, msg := clampByFiles("things", 10, 1, 0); n != 10 || msg != "" {
		t.Errorf("clampByFiles(10) = %d, %q; want 10 unchanged", n, msg)
	}
	limit, err := RaiseNoFile()
	if err != nil || limit == 0 || limit > 1<<30 {
		t.Skipf("open-file limit %d (%v): nothing to clamp against", limit, err)
	}
	n, msg := clampByFiles("things", int(limit)*2, 2, 100)
	if want := (int(limit) - 100) / 2; n != want || !strings.Contains(msg, "RLIMIT_NOFILE") {
		t.Errorf("clampByFiles(2×limit) = %d, %q; want %d and a message naming RLIMIT_NOFILE", n, msg, want)
	}
}
