// Package web serves Parley's day-one web chat page and, in development, the
// token endpoint it signs in with.
//
// The page is one static HTML file with inline CSS and JavaScript (no build
// step, no CDN). It speaks the wire protocol of edge/ws from the browser: it
// connects to /ws on the same host with subprotocol "parley.json", signs in,
// syncs, sends with idempotent retries, acks, pings and reconnects. Mount the
// Handler at "/" on the HTTP listener that serves /ws.
//
// Routes:
//
//	GET /                  the page (HEAD too); other methods get 405
//	GET /dev/token?user=U  {"token":"…"} for user U, only when Config.Mint
//	                       is set; 404 otherwise
//
// Every other path is 404.
package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/parleyim/parley/edge/auth"
)

// Config configures the page handler.
type Config struct {
	// Mint, when not nil, serves GET /dev/token?user=<id> returning
	// {"token":"…"} — only for development (parleyd enables it only when it
	// runs with the development secret). Nil means /dev/token is 404.
	Mint func(uid string) (string, error)
}

//go:embed static/index.html
var indexHTML []byte

// index is the page and the headers derived from it. Immutable after init.
var index = newPage(indexHTML)

type page struct {
	body []byte
	etag string // strong, quoted
	csp  string // allows exactly the page's inline script by hash
}

// newPage hashes the page's inline script for its Content-Security-Policy,
// so a message body that slipped into the DOM as markup could not run code.
// The page is embedded, so a missing script is a build error: it panics.
func newPage(body []byte) page {
	script, ok := inlineScript(body)
	if !ok {
		panic("web: static/index.html has no <script>…</script> block")
	}
	// Browsers hash the script as parsed: line breaks normalized to \n.
	script = bytes.ReplaceAll(bytes.ReplaceAll(script, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
	sh := sha256.Sum256(script)
	ph := sha256.Sum256(body)
	return page{
		body: body,
		etag: `"` + hex.EncodeToString(ph[:8]) + `"`,
		csp: "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sh[:]) + "'; " +
			"style-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self'; " +
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
}

// inlineScript returns the text between the page's first "<script>" and the
// "</script>" after it.
func inlineScript(body []byte) ([]byte, bool) {
	_, rest, ok := bytes.Cut(body, []byte("<script>"))
	if !ok {
		return nil, false
	}
	script, _, ok := bytes.Cut(rest, []byte("</script>"))
	return script, ok
}

// Handler returns the http.Handler for the page ("/") and, when cfg.Mint is
// set, the development token endpoint ("/dev/token"). It is safe for
// concurrent use.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", servePage)
	if cfg.Mint != nil {
		mux.Handle("/dev/token", tokenHandler{mint: cfg.Mint})
	}
	return mux
}

func servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", index.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache") // revalidate with the ETag
	h.Set("ETag", index.etag)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index.body))
}

// tokenHandler serves /dev/token.
type tokenHandler struct {
	mint func(uid string) (string, error)
}

func (t tokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: use GET"})
		return
	}
	uid := r.URL.Query().Get("user")
	if !auth.ValidID(uid) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "user must be 1-64 of [A-Za-z0-9_-]"})
		return
	}
	tok, err := t.mint(uid)
	if err != nil {
		// The cause stays on the server: it is not the client's business.
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not mint a token"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // a map of strings always encodes
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
