// Package verify checks what a device received against what was sent: every
// acknowledged message exactly once, mailbox seqs contiguous, and each send
// lane's messages in the order the lane sent them. The load generators fail a
// run on any finding; nothing here is a footnote.
package verify

import (
	"fmt"
	"strings"
)

// Lane is one sequential stream of sends: lane Lane of sender Sender. A lane
// starts a send only after the previous one was acknowledged, so its
// messages must reach every recipient in the order of N.
type Lane struct {
	Sender int32
	Lane   int32
}

// Key names one sent message: the N-th send (from 1) of a lane.
type Key struct {
	Lane
	N uint64
}

// Received is one mailbox entry as a device got it. Foreign is set when the
// entry is not one of the generator's messages (its body did not parse); its
// Key is then meaningless. System is set for an entry the server itself
// wrote, such as the system message announcing a new group: it takes its
// seq like any entry and is otherwise not checked (its Key is meaningless).
type Received struct {
	Seq     uint64
	Key     Key
	Foreign bool
	System  bool
}

// Report is the outcome of Check. The zero Report has checked nothing and
// passes.
type Report struct {
	Expected   int `json:"expected"`   // acknowledged sends addressed to the device
	Received   int `json:"received"`   // entries the device got
	Lost       int `json:"lost"`       // expected, never received
	Duplicates int `json:"duplicates"` // received more than once (extra copies)
	Reordered  int `json:"reordered"`  // received after a later message of its lane
	Unexpected int `json:"unexpected"` // received but never acknowledged, or foreign
	SeqErrors  int `json:"seq_errors"` // seq not the previous one + 1, or mailbox max not reached
	System     int `json:"system"`     // system entries (Received.System), not checked beyond their seq
	// Problems describes the first findings (at most maxProblems).
	Problems []string `json:"problems,omitempty"`
}

const maxProblems = 10

// OK reports whether nothing was lost, duplicated, reordered, unexpected or
// out of seq.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.Reordered == 0 && r.Unexpected == 0 && r.SeqErrors == 0
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Add accumulates o into r (for a run over many devices); Problems are
// prefixed with who.
func (r *Report) Add(who string, o Report) {
	r.Expected += o.Expected
	r.Received += o.Received
	r.Lost += o.Lost
	r.Duplicates += o.Duplicates
	r.Reordered += o.Reordered
	r.Unexpected += o.Unexpected
	r.SeqErrors += o.SeqErrors
	r.System += o.System
	for _, p := range o.Problems {
		r.problem("%s: %s", who, p)
	}
}

// String summarizes r on one line.
func (r Report) String() string {
	s := fmt.Sprintf("expected %d, received %d: %d lost, %d duplicated, %d out of order, %d unexpected, %d seq errors",
		r.Expected, r.Received, r.Lost, r.Duplicates, r.Reordered, r.Unexpected, r.SeqErrors)
	if len(r.Problems) > 0 {
		s += "; first: " + strings.Join(r.Problems, "; ")
	}
	return s
}

// Check compares what one device received, in the order it got it, with the
// messages acknowledged to the senders for that device (in any order).
// firstSeq is the seq the device's stream starts at (1 for a fresh
// mailbox); mailboxMax is the mailbox's max seq as the server reported it at
// the end (0 to skip that check).
func Check(got []Received, expected []Key, firstSeq, mailboxMax uint64) Report {
	return check(got, expected, true, firstSeq, mailboxMax)
}

// CheckUnsequenced is Check for a stream without seqs, such as a chat
// room's live messages (seq 0): every expected message exactly once, each
// lane in order, nothing else. Received.Seq only names entries in Problems
// ("entry 3"): set it to the arrival position.
func CheckUnsequenced(got []Received, expected []Key) Report {
	return check(got, expected, false, 0, 0)
}

func check(got []Received, expected []Key, sequenced bool, firstSeq, mailboxMax uint64) Report {
	r := Report{Expected: len(expected), Received: len(got)}
	want := make(map[Key]int, len(expected)) // key -> times received
	for _, k := range expected {
		want[k] = 0
	}
	// at names an entry in problems: by seq, or by position without seqs.
	at := func(m Received) string {
		if sequenced {
			return fmt.Sprintf("seq %d", m.Seq)
		}
		return fmt.Sprintf("entry %d", m.Seq)
	}
	extra := make(map[Key]bool) // unexpected keys seen, to tell a repeat from the first copy
	last := make(map[Lane]uint64)
	next := firstSeq
	for _, m := range got {
		if sequenced {
			if m.Seq != next {
				r.SeqErrors++
				r.problem("seq %d where %d was due", m.Seq, next)
			}
			next = m.Seq + 1
		}
		if m.System {
			r.System++
			continue
		}
		if m.Foreign {
			r.Unexpected++
			r.problem("%s is not a message of this run", at(m))
			continue
		}
		k := m.Key
		n, ok := want[k]
		switch {
		case !ok && extra[k]:
			r.Duplicates++
			r.problem("%s repeats unacknowledged %s", at(m), k)
			continue
		case !ok:
			extra[k] = true
			r.Unexpected++
			r.problem("%s is %s, which was never acknowledged", at(m), k)
		case n > 0:
			r.Duplicates++
			want[k] = n + 1
			r.problem("%s repeats %s", at(m), k)
			continue
		default:
			want[k] = 1
		}
		if k.N < last[k.Lane] {
			r.Reordered++
			r.problem("%s is %s after n=%d of the same lane", at(m), k, last[k.Lane])
		} else {
			last[k.Lane] = k.N
		}
	}
	for k, n := range want {
		if n == 0 {
			r.Lost++
			if r.Lost <= 3 {
				r.problem("%s acknowledged but never received", k)
			}
		}
	}
	if sequenced && mailboxMax != 0 && next-1 != mailboxMax { // next-1 is the last seq received
		r.SeqErrors++
		r.problem("received up to seq %d but the mailbox max is %d", next-1, mailboxMax)
	}
	return r
}

// String formats k as "sender 3 lane 1 n=42".
func (k Key) String() string {
	return fmt.Sprintf("sender %d lane %d n=%d", k.Sender, k.Lane.Lane, k.N)
}
