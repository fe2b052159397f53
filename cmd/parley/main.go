// Command parley is the Parley command-line client, built on the Go SDK
// (package client): mint development tokens, chat from a terminal (one to
// one, in groups and in rooms), send messages from scripts, dump a mailbox,
// and manage groups, friends and blocks. Run "parley help" for usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad command line
)

// env is what a command may touch of the outside world; tests fake it.
type env struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	hostname func() (string, error)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv, hostname: os.Hostname,
	})
	stop()
	os.Exit(code)
}

const usage = `Usage: parley <command> [flags]

Commands:
  token <user>   print a development token (JWT) for a user
  chat           chat with a user (--to) or a group (--group): print incoming
                 messages, send stdin lines
  send           send a message (--text) or each stdin line to --to or --group,
                 print the acks
  sync           print every mailbox entry after --after, then exit
  room <id>      join a chat room: print its last --replay messages and the live
                 ones, send stdin lines; leave at the end of stdin or on Ctrl-C
  group …        create <name> [--id gid] [--members a,b], add <gid> <user>…,
                 remove <gid> <user>…, members <gid>, list, leave <gid>
  friend …       request <peer> [--message m], accept|decline|delete <peer>,
                 list, block|unblock <peer>, blocked

Run "parley <command> -h" (or "parley group help") for a command's flags.

Connection flags (every command but token):
  --addr      tcp://host:port, ws://host:port/ws or wss://… (default $PARLEY_ADDR,
              else tcp://127.0.0.1:7420)
  --user      the user to sign in as; without --token the CLI mints a token for it
  --token     a token from your business server, instead of minting one
  --secret    the HS256 secret to mint with (default $PARLEY_SECRET, else the
              development secret parleyd uses when it has none)
  --device    the device id (default cli-<hostname>)

Output: one line per message, like "[seq 12] bob: hi". With --json, one JSON
object per line instead, with these stable fields:
  {"type":"message","seq":12,"msg_id":"…","from":"bob","from_device":"d1",
   "to_type":"user","to":"alice","client_msg_id":"…","content_type":"text",
   "text":"hi","created_at_ms":1700000000000}
    to_type is user, group or room; content_type is text, image, file,
    custom, command or system; a text body is in "text", any other body is
    base64 in "body".
  {"type":"ack","seq":13,"msg_id":"…","client_msg_id":"…",
   "created_at_ms":1700000000000,"duplicate":false}
Room messages are message lines with "seq":0 and "to_type":"room" (their
acks have "seq":0 too). group and friend print the server's result JSON as
one line, e.g. {"group":{"group_id":"g1","name":"team",…}}; without --json,
group create prints the new group id alone.
Errors go to stderr. Exit status: 0 ok, 1 failure, 2 bad command line.
`

// run runs one command line and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	case "token":
		err = runToken(rest, e)
	case "chat":
		err = runChat(ctx, rest, e)
	case "send":
		err = runSend(ctx, rest, e)
	case "sync":
		err = runSync(ctx, rest, e)
	case "room":
		err = runRoom(ctx, rest, e)
	case "group":
		err = runGroup(ctx, rest, e)
	case "friend":
		err = runFriend(ctx, rest, e)
	default:
		fmt.Fprintf(e.stderr, "parley: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	return exitCode(err, e)
}

// usageError is a bad command line: reported with exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode reports err on stderr and maps it to an exit status.
func exitCode(err error, e env) int {
	var u *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFlagsReported):
		return exitUsage
	case errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintf(e.stderr, "parley: %v\nRun \"parley help\" for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "parley: %v\n", err)
	return exitError
}
