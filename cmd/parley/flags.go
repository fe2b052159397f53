package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/edge/auth"
)

var (
	// errFlagsReported: the flag package already printed the error and the
	// command's usage.
	errFlagsReported = errors.New("bad flags")
	// errHelpShown: -h printed the command's usage.
	errHelpShown = errors.New("help shown")
)

// tokenTTL is the lifetime of the tokens the CLI mints for itself.
const tokenTTL = 24 * time.Hour

// connOpts are the flags shared by chat, send and sync.
type connOpts struct {
	addr     string
	wireJSON bool
	user     string
	token    string
	secret   string
	device   string
	json     bool
}

// tokenOpts are the token command's flags.
type tokenOpts struct {
	user   string
	secret string
	ttl    time.Duration
}

// chatOpts are the chat command's flags.
type chatOpts struct {
	conn connOpts
	to   string
}

// sendOpts are the send command's flags.
type sendOpts struct {
	conn    connOpts
	to      string
	text    string
	hasText bool // --text was given, even empty
	timeout time.Duration
}

// syncOpts are the sync command's flags.
type syncOpts struct {
	conn    connOpts
	after   uint64
	timeout time.Duration
}

func newFlagSet(name, synopsis string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("parley "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: parley %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func addConnFlags(fs *flag.FlagSet, o *connOpts, e env) {
	addr := e.getenv("PARLEY_ADDR")
	if addr == "" {
		addr = client.DefaultAddr
	}
	fs.StringVar(&o.addr, "addr", addr, "server `address`: tcp://host:port, ws://host:port/ws or wss://… ($PARLEY_ADDR)")
	fs.BoolVar(&o.wireJSON, "wire-json", false, "with a ws:// address, use the parley.json subprotocol instead of binary protobuf")
	fs.StringVar(&o.user, "user", "", "`user` id to sign in as (mints a token unless --token is set)")
	fs.StringVar(&o.token, "token", "", "`JWT` to sign in with, instead of minting one")
	fs.StringVar(&o.secret, "secret", "", "HS256 `secret` to mint the token with (default $PARLEY_SECRET, else the development secret)")
	fs.StringVar(&o.device, "device", defaultDevice(e), "device `id`, 1-64 of [A-Za-z0-9_-]")
	fs.BoolVar(&o.json, "json", false, "print JSON lines (see parley help)")
}

// parse parses args, allowing positional arguments between flags, and
// returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpShown
			}
			return nil, errFlagsReported
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func parseToken(args []string, e env) (tokenOpts, error) {
	var o tokenOpts
	fs := newFlagSet("token", "token <user> [--secret S] [--ttl 24h]", e)
	fs.StringVar(&o.secret, "secret", "", "HS256 `secret` (default $PARLEY_SECRET, else the development secret)")
	fs.DurationVar(&o.ttl, "ttl", tokenTTL, "token lifetime")
	pos, err := parse(fs, args)
	if err != nil {
		return o, err
	}
	switch {
	case len(pos) != 1:
		return o, usagef("token: want exactly one user, got %d arguments", len(pos))
	case !auth.ValidID(pos[0]):
		return o, usagef("token: invalid user id %q: want 1-64 of [A-Za-z0-9_-]", pos[0])
	case o.ttl <= 0:
		return o, usagef("token: --ttl must be positive, got %v", o.ttl)
	}
	o.user = pos[0]
	o.secret = secretOrDefault(o.secret, e)
	return o, nil
}

func parseChat(args []string, e env) (chatOpts, error) {
	var o chatOpts
	fs := newFlagSet("chat", "chat --user alice --to bob [--device d1] [--addr A] [--token T | --secret S] [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.StringVar(&o.to, "to", "", "`user` to chat with (required)")
	if err := parseNoArgs(fs, args); err != nil {
		return o, err
	}
	if err := o.conn.check(e); err != nil {
		return o, err
	}
	if !auth.ValidID(o.to) {
		return o, usagef("chat: --to: want a user id, got %q", o.to)
	}
	return o, nil
}

func parseSend(args []string, e env) (sendOpts, error) {
	var o sendOpts
	fs := newFlagSet("send", "send --user alice --to bob [--text hi | stdin lines] [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.StringVar(&o.to, "to", "", "`user` to send to (required)")
	fs.StringVar(&o.text, "text", "", "message `text`; without it every stdin line is one message")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long (0: never)")
	if err := parseNoArgs(fs, args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.hasText = o.hasText || f.Name == "text" })
	if err := o.conn.check(e); err != nil {
		return o, err
	}
	if !auth.ValidID(o.to) {
		return o, usagef("send: --to: want a user id, got %q", o.to)
	}
	if o.timeout < 0 {
		return o, usagef("send: --timeout must not be negative")
	}
	return o, nil
}

func parseSync(args []string, e env) (syncOpts, error) {
	var o syncOpts
	fs := newFlagSet("sync", "sync --user alice [--after 0] [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.Uint64Var(&o.after, "after", 0, "print entries with a seq above this")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long (0: never)")
	if err := parseNoArgs(fs, args); err != nil {
		return o, err
	}
	if err := o.conn.check(e); err != nil {
		return o, err
	}
	if o.timeout < 0 {
		return o, usagef("sync: --timeout must not be negative")
	}
	return o, nil
}

func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s: unexpected arguments %q", strings.TrimPrefix(fs.Name(), "parley "), pos)
	}
	return nil
}

// check validates the connection flags.
func (o *connOpts) check(e env) error {
	if o.token == "" && o.user == "" {
		return usagef("--user is required (or --token)")
	}
	if o.user != "" && !auth.ValidID(o.user) {
		return usagef("--user: invalid user id %q: want 1-64 of [A-Za-z0-9_-]", o.user)
	}
	if !auth.ValidID(o.device) {
		return usagef("--device: invalid device id %q: want 1-64 of [A-Za-z0-9_-]", o.device)
	}
	if o.wireJSON && !strings.HasPrefix(o.addr, "ws://") && !strings.HasPrefix(o.addr, "wss://") {
		return usagef("--wire-json needs a ws:// or wss:// --addr, got %q", o.addr)
	}
	o.secret = secretOrDefault(o.secret, e)
	return nil
}

// config builds the SDK config, minting a token when none was given.
func (o connOpts) config() (client.Config, error) {
	token := o.token
	if token == "" {
		var err error
		if token, err = auth.Mint([]byte(o.secret), o.user, tokenTTL); err != nil {
			return client.Config{}, fmt.Errorf("mint token for %q: %w", o.user, err)
		}
	}
	return client.Config{
		Addr:     o.addr,
		JSON:     o.wireJSON,
		Token:    token,
		DeviceID: o.device,
		Platform: "cli",
	}, nil
}

func secretOrDefault(flagValue string, e env) string {
	switch {
	case flagValue != "":
		return flagValue
	case e.getenv("PARLEY_SECRET") != "":
		return e.getenv("PARLEY_SECRET")
	}
	return auth.DevSecret
}

// defaultDevice is "cli-" and the host name with every character outside
// [A-Za-z0-9_-] replaced by "-", cut to 64 characters.
func defaultDevice(e env) string {
	h, err := e.hostname()
	if err != nil || h == "" {
		return "cli"
	}
	return sanitizeID("cli-" + h)
}

func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
