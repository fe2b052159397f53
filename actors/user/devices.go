package user

import "slices"

// session is one signed-in device's current connection.
type session struct {
	deviceID string
	edgeID   string
	connID   uint64
	platform string
}

// devices is a user's signed-in devices, at most one session each. A user
// has a few devices at most, so a slice: a map of one entry costs ~600
// bytes, most of an idle connection's memory budget (docs/PERFORMANCE.md).
type devices []session

// get returns the session of device id.
func (d devices) get(id string) (session, bool) {
	for _, s := range d {
		if s.deviceID == id {
			return s, true
		}
	}
	return session{}, false
}

// set makes s its device's session.
func (d *devices) set(s session) {
	for i := range *d {
		if (*d)[i].deviceID == s.deviceID {
			(*d)[i] = s
			return
		}
	}
	*d = append(*d, s)
}

// removeIf removes the sessions for which drop is true and returns them.
// The last removal frees the slice, so an idle actor holds nothing.
func (d *devices) removeIf(drop func(session) bool) []session {
	var gone []session
	kept := (*d)[:0]
	for _, s := range *d {
		if drop(s) {
			gone = append(gone, s)
		} else {
			kept = append(kept, s)
		}
	}
	clear((*d)[len(kept):])
	if len(kept) == 0 {
		kept = nil
	}
	*d = kept
	return gone
}

// byEdge calls f once per edge with the connections of that edge's
// sessions, in the order the edges first appear, leaving out the
// connection skip (a sender's own).
func (d devices) byEdge(skip replyTo, f func(edgeID string, connIDs []uint64)) {
	type edgeConns struct {
		edgeID  string
		connIDs []uint64
	}
	var edges []edgeConns
	for _, s := range d {
		if s.edgeID == skip.edgeID && s.connID == skip.connID {
			continue
		}
		i := slices.IndexFunc(edges, func(e edgeConns) bool { return e.edgeID == s.edgeID })
		if i < 0 {
			edges = append(edges, edgeConns{edgeID: s.edgeID})
			i = len(edges) - 1
		}
		edges[i].connIDs = append(edges[i].connIDs, s.connID)
	}
	for _, e := range edges {
		f(e.edgeID, e.connIDs)
	}
}
