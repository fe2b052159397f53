package user

import (
	"context"
	"time"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Device is one online device of a user, as presence reports it.
type Device struct {
	DeviceID string `json:"device_id"`
	EdgeID   string `json:"edge_id"`
	Platform string `json:"platform,omitempty"`
}

// PresenceQuery asks an actor for its online devices. Reply gets one value.
type PresenceQuery struct {
	Reply chan<- []Device
}

// Disconnect closes a user's device connections (all of them when DeviceID
// is empty). Reply, if set, gets how many were closed.
type Disconnect struct {
	DeviceID string
	Code     wirepb.ErrorCode
	Message  string
	Reply    chan<- int
}

// TransientPush pushes a message that is not stored (seq 0) to every online
// device of the user. Reply, if set, gets how many devices it was sent to.
type TransientPush struct {
	Message *wirepb.Message
	Reply   chan<- int
}

// EdgeGone says an edge stopped sending heartbeats: its connections are gone.
type EdgeGone struct {
	EdgeID string
}

func (a *Actor) edgeGone(g *EdgeGone) {
	a.offline(a.devices.removeIf(func(s session) bool { return s.edgeID == g.EdgeID }))
}

// offline announces the sessions that ended.
func (a *Actor) offline(gone []session) {
	for _, s := range gone {
		a.env.Events.Publish("device", a.uid, events.Device{Type: "device.offline", User: a.uid, Device: s.deviceID,
			Edge: s.edgeID, Platform: s.platform, AtMs: time.Now().UnixMilli()})
	}
}

func (a *Actor) presence(q *PresenceQuery) {
	out := make([]Device, 0, len(a.devices))
	for _, s := range a.devices {
		out = append(out, Device{DeviceID: s.deviceID, EdgeID: s.edgeID, Platform: s.platform})
	}
	q.Reply <- out
}

func (a *Actor) disconnect(d *Disconnect) {
	n := 0
	for _, s := range a.devices {
		if d.DeviceID != "" && s.deviceID != d.DeviceID {
			continue
		}
		a.env.Down(s.edgeID, &buspb.Down{ConnIds: []uint64{s.connID}, CloseCode: d.Code, CloseMessage: d.Message})
		n++
	}
	if d.Reply != nil {
		d.Reply <- n
	}
}

func (a *Actor) transient(t *TransientPush) {
	t.Message.Seq = 0
	a.push([]pushItem{{msg: t.Message}})
	if t.Reply != nil {
		t.Reply <- len(a.devices)
	}
}

// call runs a Call off the actor as this user and answers the device.
func (a *Actor) call(to replyTo, c *wirepb.Call) {
	if a.env.Call == nil {
		a.replyError(to, wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME, "calls are not served by this node", "")
		return
	}
	uid := a.uid
	a.env.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := a.env.Call(ctx, uid, c.Method, c.ParamsJson)
		if err != nil {
			a.replyError(to, social.Code(err), err.Error(), "")
			return
		}
		a.reply(to, &wirepb.Frame{Body: &wirepb.Frame_CallResult{CallResult: &wirepb.CallResult{Method: c.Method, ResultJson: res}}})
	})
}
