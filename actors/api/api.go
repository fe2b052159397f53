// Package api is the server API a business server calls: push messages,
// manage groups, friends and blocks, query presence, fetch history,
// disconnect devices. One implementation (Service.Do), served three ways:
//
//   - NATS request/reply: a nats.go micro service "parley" with one endpoint
//     per method on subject parley.api.<method> (`nats micro ls`), the API key
//     in the Parley-Api-Key header;
//   - HTTP/JSON: POST /api/v1/<method> with "Authorization: Bearer <key>";
//   - the client connection: a signed-in user's Call frame runs the methods
//     marked for clients, as that user (never with server rights).
//
// docs/API.md lists every method with its JSON.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parleyim/parley/actors/host"
	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

// Config configures a Service.
type Config struct {
	Host  *host.Host // started
	Store mailbox.Store
	NATS  *nats.Conn
	// APIKey authenticates the business server on NATS and HTTP. Empty
	// disables those two transports (client Calls still work).
	APIKey      string
	MaxBodySize int // zero means 32 KiB
	Logger      *slog.Logger
}

// Service runs API methods.
type Service struct {
	cfg Config
	log *slog.Logger
	dir *social.Directory
	js  jetstream.JetStream
	ids *msgid.Gen
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Host == nil || cfg.Host.Social() == nil || cfg.Store == nil || cfg.NATS == nil {
		return nil, errors.New("api: a started Host, Store and NATS are required")
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 32 << 10
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("api: jetstream: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log.With("component", "api"), dir: cfg.Host.Social(), js: js, ids: msgid.New()}, nil
}

// caller is who runs a method: a signed-in user, or the business server
// (user == "").
type caller struct{ user string }

func (c caller) server() bool { return c.user == "" }

// method is one API operation.
type method struct {
	// client: a signed-in user may Call it (as themselves).
	client bool
	run    func(ctx context.Context, s *Service, c caller, params []byte) (any, error)
}

// Methods lists every method name, sorted.
func Methods() []string {
	out := make([]string, 0, len(methods))
	for name := range methods {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Do runs a method for the business server.
func (s *Service) Do(ctx context.Context, name string, params []byte) (any, error) {
	m, ok := methods[name]
	if !ok {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "no API method %q", name)
	}
	return m.run(ctx, s, caller{}, params)
}

// CallAs runs a client's Call as user uid and returns the JSON result. It is
// what host.SetCall takes.
func (s *Service) CallAs(ctx context.Context, uid, name, params string) (string, error) {
	m, ok := methods[name]
	if !ok || !m.client {
		return "", errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "no method %q for clients", name)
	}
	res, err := m.run(ctx, s, caller{user: uid}, []byte(params))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return "", fmt.Errorf("encode result of %s: %w", name, err)
	}
	return string(b), nil
}

func errorf(code wirepb.ErrorCode, format string, args ...any) error {
	return &social.Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return errorf(wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, format, args...)
}

// decode reads params into p, refusing unknown fields so typos are errors.
func decode(params []byte, p any) error {
	if len(bytes.TrimSpace(params)) == 0 {
		params = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		// Say what is wrong in the caller's terms, never in Go's.
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return invalid("params must be a JSON object")
		case errors.As(err, &typeErr):
			return invalid("params: field %q cannot be a JSON %s", typeErr.Field, typeErr.Value)
		case errors.As(err, &syntaxErr):
			return invalid("params are not valid JSON (at byte %d)", syntaxErr.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("params: the JSON ends too early")
		}
		return invalid("params: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	// Not dec.More: it reports false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return invalid("params: trailing data after the JSON object")
	}
	return nil
}

// acting returns the user a method acts for: the caller when a user calls
// (a "user" field naming someone else is refused), the "user" field when
// the business server calls (required).
func acting(c caller, field string) (string, error) {
	if c.server() {
		if !wirepb.ValidID(field) {
			return "", invalid("user must be a valid user id (1-64 of [A-Za-z0-9_-])")
		}
		return field, nil
	}
	if field != "" && field != c.user {
		return "", errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "you may act only as yourself")
	}
	return c.user, nil
}

// run adapts a typed method body.
func run[P any](f func(ctx context.Context, s *Service, c caller, p *P) (any, error)) func(context.Context, *Service, caller, []byte) (any, error) {
	return func(ctx context.Context, s *Service, c caller, params []byte) (any, error) {
		var p P
		if err := decode(params, &p); err != nil {
			return nil, err
		}
		return f(ctx, s, c, &p)
	}
}

// empty is the result of methods that return nothing.
type empty struct{}
