package web

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPage(t *testing.T) {
	h := Handler(Config{})
	res := get(t, h, http.MethodGet, "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / status = %d; want 200", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type = %q; want text/html", ct)
	}
	page := body(t, res)
	for _, want := range []string{"'/ws'", "'parley.json'", "<script>", "/dev/token"} {
		if !strings.Contains(page, want) {
			t.Errorf("page does not contain %q", want)
		}
	}
	script, _ := inlineScript([]byte(page))
	sum := sha256.Sum256(script)
	if csp, want := res.Header.Get("Content-Security-Policy"), "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'"; !strings.Contains(csp, want) {
		t.Errorf("Content-Security-Policy = %q; want it to contain %q", csp, want)
	}

	// The ETag revalidates.
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusNotModified {
		t.Errorf("GET / with If-None-Match = %d; want 304", w.Code)
	}
}

func TestRoutes(t *testing.T) {
	mint := func(uid string) (string, error) { return "tok-" + uid, nil }
	tests := []struct {
		name         string
		mint         func(string) (string, error)
		method, path string
		wantStatus   int
	}{
		{"page HEAD", nil, http.MethodHead, "/", http.StatusOK},
		{"page POST", nil, http.MethodPost, "/", http.StatusMethodNotAllowed},
		{"unknown path", nil, http.MethodGet, "/nope", http.StatusNotFound},
		{"index.html", nil, http.MethodGet, "/index.html", http.StatusNotFound},
		{"token without Mint", nil, http.MethodGet, "/dev/token?user=alice", http.StatusNotFound},
		{"token with Mint", mint, http.MethodGet, "/dev/token?user=alice", http.StatusOK},
		{"token POST", mint, http.MethodPost, "/dev/token?user=alice", http.StatusMethodNotAllowed},
		{"token HEAD", mint, http.MethodHead, "/dev/token?user=alice", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, Handler(Config{Mint: tt.mint}), tt.method, tt.path)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("%s %s = %d; want %d", tt.method, tt.path, res.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestDevToken(t *testing.T) {
	var minted []string
	h := Handler(Config{Mint: func(uid string) (string, error) {
		minted = append(minted, uid)
		if uid == "broken" {
			return "", errors.New("secret store on fire")
		}
		return "tok-" + uid, nil
	}})
	tests := []struct {
		query      string
		wantStatus int
		wantKey    string // "token" or "error"
		wantValue  string // exact, or "" for any non-empty
	}{
		{"user=alice", http.StatusOK, "token", "tok-alice"},
		{"user=A_b-9", http.StatusOK, "token", "tok-A_b-9"},
		{"user=" + strings.Repeat("x", 64), http.StatusOK, "token", "tok-" + strings.Repeat("x", 64)},
		{"", http.StatusBadRequest, "error", ""},
		{"user=", http.StatusBadRequest, "error", ""},
		{"user=" + strings.Repeat("x", 65), http.StatusBadRequest, "error", ""},
		{"user=a.b", http.StatusBadRequest, "error", ""},
		{"user=a%20b", http.StatusBadRequest, "error", ""},
		{"user=%C3%A9", http.StatusBadRequest, "error", ""},
		{"user=broken", http.StatusInternalServerError, "error", "could not mint a token"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			res := get(t, h, http.MethodGet, "/dev/token?"+tt.query)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("GET /dev/token?%s = %d; want %d", tt.query, res.StatusCode, tt.wantStatus)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(body(t, res)), &got); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if v := got[tt.wantKey]; v == "" || (tt.wantValue != "" && v != tt.wantValue) || len(got) != 1 {
				t.Errorf("body = %v; want only %q = %q", got, tt.wantKey, tt.wantValue)
			}
		})
	}
	for _, uid := range minted {
		if uid != "alice" && uid != "A_b-9" && uid != strings.Repeat("x", 64) && uid != "broken" {
			t.Errorf("Mint called with invalid user %q", uid)
		}
	}
}

// TestPageScript checks the page's inline script with node, when installed:
// that it parses, and that it speaks the protocol right against a scripted
// fake server on a fake clock (testdata/page_test.js).
func TestPageScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	script, ok := inlineScript(indexHTML)
	if !ok {
		t.Fatal("no inline script")
	}
	path := filepath.Join(t.TempDir(), "page.js")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(node, "--check", path).CombinedOutput(); err != nil {
		t.Fatalf("node --check: %v\n%s", err, out)
	}
	out, err := exec.Command(node, filepath.Join("testdata", "page_test.js"), path).CombinedOutput()
	if err != nil {
		t.Fatalf("node testdata/page_test.js: %v\n%s", err, out)
	}
}

// TestCSPLineEndings: a checkout with CRLF line endings hashes like the
// browser, which normalizes line breaks before hashing the script.
func TestCSPLineEndings(t *testing.T) {
	crlf := []byte(strings.ReplaceAll(string(indexHTML), "\n", "\r\n"))
	if got, want := newPage(crlf).csp, newPage(indexHTML).csp; got != want {
		t.Errorf("CSP of the CRLF page = %q; want %q", got, want)
	}
}
