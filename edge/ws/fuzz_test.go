package ws

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// FuzzDecodeJSON feeds untrusted parley.json text frames to the decoder the
// reader uses: it must never panic, and what it accepts must survive a
// protobuf round trip.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","signIn":{"token":"t","deviceId":"d"}}`,
		`{"id":"2","send":{"to":{"type":"CONVERSATION_TYPE_USER","id":"bob"},"clientMsgId":"c","body":"aGk="}}`,
		`{"sync":{"afterSeq":"18446744073709551615","limit":1}}`,
		`{"id":-1}`, `[]`, `{"unknown":{"x":1}}`, `{"ping":{}, "pong":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := &wirepb.Frame{}
		if err := jsonIn.Unmarshal(data, fr); err != nil {
			return
		}
		b, err := proto.Marshal(fr)
		if err != nil {
			t.Fatalf("accepted frame does not encode: %v", err)
		}
		var back wirepb.Frame
		if err := proto.Unmarshal(b, &back); err != nil || !proto.Equal(fr, &back) {
			t.Fatalf("round trip changed the frame: %v", err)
		}
	})
}
