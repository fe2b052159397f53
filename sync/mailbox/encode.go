package mailbox

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// seqField is wirepb.Message's seq field number.
var seqField = (&wirepb.Message{}).ProtoReflect().Descriptor().Fields().ByName("seq").Number()

// EncodeEntry returns m's protobuf encoding with Seq set to seq, without
// modifying m (messages are shared, immutable values). When m.Seq is zero
// the field is absent from m's encoding and is appended; seq is the
// highest field number, so the result is what marshalling a copy gives.
func EncodeEntry(m *wirepb.Message, seq uint64) ([]byte, error) {
	if m.Seq != 0 {
		c := proto.CloneOf(m)
		c.Seq = seq
		return proto.Marshal(c)
	}
	n := proto.Size(m)
	b := make([]byte, 0, n+protowire.SizeTag(seqField)+protowire.SizeVarint(seq))
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
	if err != nil {
		return nil, err
	}
	b = protowire.AppendTag(b, seqField, protowire.VarintType)
	return protowire.AppendVarint(b, seq), nil
}
