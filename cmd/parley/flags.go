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

// chatOpts are the chat command's flags. Exactly one of to and group is
// set.
type chatOpts struct {
	conn  connOpts
	to    string
	group string
}

// sendOpts are the send command's flags. Exactly one of to and group is
// set.
type sendOpts struct {
	conn    connOpts
	to      string
	group   string
	text    string
	hasText bool // --text was given, even empty
	timeout time.Duration
}

// roomOpts are the room command's flags.
type roomOpts struct {
	conn   connOpts
	room   string
	replay int
}

// callOpts are the flags of a command that makes one API call (group …,
// friend …): the method and its JSON parameters.
type callOpts struct {
	conn    connOpts
	cmd     string         // "group create", for messages
	method  string         // "group.create"
	params  map[string]any // encoded as the call's params_json
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
	fs := newFlagSet("chat", "chat --user alice (--to bob | --group g1) [--device d1] [--addr A] [--token T | --secret S] [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.StringVar(&o.to, "to", "", "`user` to chat with (this or --group is required)")
	fs.StringVar(&o.group, "group", "", "`group` id to chat in")
	if err := parseNoArgs(fs, args); err != nil {
		return o, err
	}
	if err := o.conn.check(e); err != nil {
		return o, err
	}
	if err := checkTarget("chat", o.to, o.group); err != nil {
		return o, err
	}
	return o, nil
}

func parseSend(args []string, e env) (sendOpts, error) {
	var o sendOpts
	fs := newFlagSet("send", "send --user alice (--to bob | --group g1) [--text hi | stdin lines] [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.StringVar(&o.to, "to", "", "`user` to send to (this or --group is required)")
	fs.StringVar(&o.group, "group", "", "`group` id to send to")
	fs.StringVar(&o.text, "text", "", "message `text`; without it every stdin line is one message")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long (0: never)")
	if err := parseNoArgs(fs, args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.hasText = o.hasText || f.Name == "text" })
	if err := o.conn.check(e); err != nil {
		return o, err
	}
	if err := checkTarget("send", o.to, o.group); err != nil {
		return o, err
	}
	if o.timeout < 0 {
		return o, usagef("send: --timeout must not be negative")
	}
	return o, nil
}

// checkTarget checks that exactly one of --to and --group names a valid id.
func checkTarget(cmd, to, group string) error {
	switch {
	case to == "" && group == "":
		return usagef("%s: --to (a user) or --group is required", cmd)
	case to != "" && group != "":
		return usagef("%s: give --to or --group, not both", cmd)
	case group != "" && !auth.ValidID(group):
		return usagef("%s: --group: invalid group id %q: want 1-64 of [A-Za-z0-9_-]", cmd, group)
	case to != "" && !auth.ValidID(to):
		return usagef("%s: --to: want a user id, got %q", cmd, to)
	}
	return nil
}

func parseRoom(args []string, e env) (roomOpts, error) {
	var o roomOpts
	fs := newFlagSet("room", "room <room-id> --user alice [--replay 20] [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.IntVar(&o.replay, "replay", 20, "print up to this many of the room's latest messages first")
	pos, err := parse(fs, args)
	if err != nil {
		return o, err
	}
	if err := o.conn.check(e); err != nil {
		return o, err
	}
	switch {
	case len(pos) != 1:
		return o, usagef("room: want exactly one room id, got %d arguments", len(pos))
	case !auth.ValidID(pos[0]):
		return o, usagef("room: invalid room id %q: want 1-64 of [A-Za-z0-9_-]", pos[0])
	case o.replay < 0:
		return o, usagef("room: --replay must not be negative, got %d", o.replay)
	}
	o.room = pos[0]
	return o, nil
}

// subcommand is one subcommand of group or friend, for parsing and help.
type subcommand struct {
	name     string
	synopsis string // after "parley "
	help     string
}

var groupSubs = []subcommand{
	{"create", "group create <name> [--id gid] [--members a,b,c]", "create a group you own; print its id"},
	{"add", "group add <gid> <user>...", "add members to a group"},
	{"remove", "group remove <gid> <user>...", "remove members from a group"},
	{"members", "group members <gid>", "list a group's members"},
	{"list", "group list", "list your groups"},
	{"leave", "group leave <gid>", "leave a group"},
}

var friendSubs = []subcommand{
	{"request", "friend request <peer> [--message text]", "ask a user to be your friend"},
	{"accept", "friend accept <peer>", "accept a friend request"},
	{"decline", "friend decline <peer>", "decline a friend request"},
	{"delete", "friend delete <peer>", "end a friendship"},
	{"list", "friend list", "list your friends and pending requests"},
	{"block", "friend block <peer>", "block a user: their messages to you are refused"},
	{"unblock", "friend unblock <peer>", "unblock a user"},
	{"blocked", "friend blocked", "list the users you blocked"},
}

// subHelp is the help text of a command with subcommands.
func subHelp(cmd string, subs []subcommand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: parley %s <subcommand> [arguments] [flags]\n\nSubcommands:\n", cmd)
	for _, s := range subs {
		fmt.Fprintf(&b, "  %-49s %s\n", s.synopsis, s.help)
	}
	fmt.Fprintf(&b, "\nEvery subcommand takes the connection flags, --json (print the result JSON)\nand --timeout. Run \"parley %s <subcommand> -h\" for its flags.\n", cmd)
	return b.String()
}

// pickSub splits args into a subcommand of subs and the rest.
func pickSub(cmd string, subs []subcommand, args []string, e env) (subcommand, []string, error) {
	var names []string
	for _, s := range subs {
		names = append(names, s.name)
	}
	if len(args) == 0 {
		return subcommand{}, nil, usagef("%s: missing subcommand: want one of %s", cmd, strings.Join(names, ", "))
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, subHelp(cmd, subs))
		return subcommand{}, nil, errHelpShown
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s, args[1:], nil
		}
	}
	if strings.HasPrefix(args[0], "-") {
		return subcommand{}, nil, usagef("%s: the subcommand comes first, then flags: parley %s <%s> [flags]", cmd, cmd, strings.Join(names, "|"))
	}
	return subcommand{}, nil, usagef("%s: unknown subcommand %q: want one of %s", cmd, args[0], strings.Join(names, ", "))
}

// parseCallFlags parses the flags of a call subcommand, with extra adding
// its own flags, and returns the positional arguments.
func parseCallFlags(o *callOpts, sub subcommand, args []string, e env, extra func(fs *flag.FlagSet)) ([]string, error) {
	o.cmd = strings.Fields(sub.synopsis)[0] + " " + sub.name
	fs := newFlagSet(o.cmd, sub.synopsis+" --user alice [--json]", e)
	addConnFlags(fs, &o.conn, e)
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long (0: never)")
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if err := o.conn.check(e); err != nil {
		return nil, err
	}
	if o.timeout < 0 {
		return nil, usagef("%s: --timeout must not be negative", o.cmd)
	}
	return pos, nil
}

// wantIDs checks that pos holds between lo and hi ids (hi < 0: no limit),
// each of them valid; what names them in errors.
func wantIDs(cmd string, pos []string, lo, hi int, what string) error {
	switch {
	case len(pos) < lo || (hi >= 0 && len(pos) > hi):
		want := fmt.Sprintf("%d", lo)
		switch {
		case hi < 0:
			want = fmt.Sprintf("at least %d", lo)
		case hi != lo:
			want = fmt.Sprintf("%d to %d", lo, hi)
		}
		return usagef("%s: want %s arguments (%s), got %d", cmd, want, what, len(pos))
	}
	for _, id := range pos {
		if !auth.ValidID(id) {
			return usagef("%s: invalid id %q: want 1-64 of [A-Za-z0-9_-]", cmd, id)
		}
	}
	return nil
}

// idList splits a comma-separated list of ids, skipping empty items.
func idList(cmd, flagName, s string) ([]string, error) {
	out := []string{}
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if !auth.ValidID(id) {
			return nil, usagef("%s: %s: invalid user id %q: want 1-64 of [A-Za-z0-9_-]", cmd, flagName, id)
		}
		out = append(out, id)
	}
	return out, nil
}

func parseGroup(args []string, e env) (callOpts, error) {
	var o callOpts
	sub, rest, err := pickSub("group", groupSubs, args, e)
	if err != nil {
		return o, err
	}
	var id, members string
	pos, err := parseCallFlags(&o, sub, rest, e, func(fs *flag.FlagSet) {
		if sub.name == "create" {
			fs.StringVar(&id, "id", "", "group `id` to create (default: the server picks one)")
			fs.StringVar(&members, "members", "", "comma-separated `users` to add besides you")
		}
	})
	if err != nil {
		return o, err
	}
	switch sub.name {
	case "create":
		if len(pos) != 1 {
			return o, usagef("group create: want exactly one name, got %d arguments (quote a name with spaces)", len(pos))
		}
		if strings.TrimSpace(pos[0]) == "" {
			return o, usagef("group create: the name is empty")
		}
		if id != "" && !auth.ValidID(id) {
			return o, usagef("group create: --id: invalid group id %q: want 1-64 of [A-Za-z0-9_-]", id)
		}
		list, err := idList(o.cmd, "--members", members)
		if err != nil {
			return o, err
		}
		o.method, o.params = "group.create", map[string]any{"name": pos[0], "members": list}
		if id != "" {
			o.params["group_id"] = id
		}
	case "add", "remove":
		if err := wantIDs(o.cmd, pos, 2, -1, "a group id and users"); err != nil {
			return o, err
		}
		o.method = "group.members." + sub.name
		o.params = map[string]any{"group_id": pos[0], "users": pos[1:]}
	case "members", "leave":
		if err := wantIDs(o.cmd, pos, 1, 1, "a group id"); err != nil {
			return o, err
		}
		o.method = map[string]string{"members": "group.members.list", "leave": "group.leave"}[sub.name]
		o.params = map[string]any{"group_id": pos[0]}
	case "list":
		if err := wantIDs(o.cmd, pos, 0, 0, "none"); err != nil {
			return o, err
		}
		o.method, o.params = "user.groups", map[string]any{}
	}
	return o, nil
}

func parseFriend(args []string, e env) (callOpts, error) {
	var o callOpts
	sub, rest, err := pickSub("friend", friendSubs, args, e)
	if err != nil {
		return o, err
	}
	var message string
	pos, err := parseCallFlags(&o, sub, rest, e, func(fs *flag.FlagSet) {
		if sub.name == "request" {
			fs.StringVar(&message, "message", "", "a `text` for the peer to read with the request")
		}
	})
	if err != nil {
		return o, err
	}
	switch sub.name {
	case "list", "blocked":
		if err := wantIDs(o.cmd, pos, 0, 0, "none"); err != nil {
			return o, err
		}
		o.method = map[string]string{"list": "friend.list", "blocked": "block.list"}[sub.name]
		o.params = map[string]any{}
		return o, nil
	}
	if err := wantIDs(o.cmd, pos, 1, 1, "a peer user id"); err != nil {
		return o, err
	}
	o.params = map[string]any{"peer": pos[0]}
	switch sub.name {
	case "request":
		o.method, o.params["message"] = "friend.request", message
	case "block":
		o.method = "block.add"
	case "unblock":
		o.method = "block.remove"
	default: // accept, decline, delete
		o.method = "friend." + sub.name
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
