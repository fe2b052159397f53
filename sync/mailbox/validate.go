package mailbox

import "fmt"

// Limits every Store enforces, so the embedded store accepts exactly what
// MySQL accepts.
const (
	MaxIDLen        = 64  // user id, device id, msg id, in bytes
	MaxClientKeyLen = 140 // ClientKey: device "/" client msg id
)

// Validate rejects a batch a store cannot take. It fails the whole batch
// (Store has no per-part error but ErrConflict), so callers validate at the
// edge.
func Validate(batch []Append) error {
	for i := range batch {
		a := &batch[i]
		if err := CheckID("user id", a.UserID); err != nil {
			return fmt.Errorf("append mailbox part=%d: %w", i, err)
		}
		for j, it := range a.Items {
			if it.Message == nil {
				return fmt.Errorf("append mailbox uid=%s item=%d: nil message", a.UserID, j)
			}
			if err := CheckID("msg id", it.Message.MsgId); err != nil {
				return fmt.Errorf("append mailbox uid=%s item=%d: %w", a.UserID, j, err)
			}
			if len(it.Outbox) > MaxOutboxLen {
				return fmt.Errorf("append mailbox uid=%s item=%d: outbox over %d bytes", a.UserID, j, MaxOutboxLen)
			}
			if len(it.ClientKey) > MaxClientKeyLen {
				return fmt.Errorf("append mailbox uid=%s item=%d: client key longer than %d bytes", a.UserID, j, MaxClientKeyLen)
			}
		}
	}
	return nil
}

// CheckID rejects an empty id or one longer than MaxIDLen bytes.
func CheckID(what, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%s longer than %d bytes", what, MaxIDLen)
	}
	return nil
}

// CheckCursors rejects a cursor with an empty or overlong user or device id.
func CheckCursors(cursors []Cursor) error {
	for _, c := range cursors {
		if err := CheckID("user id", c.UserID); err != nil {
			return fmt.Errorf("set acked: %w", err)
		}
		if err := CheckID("device id", c.DeviceID); err != nil {
			return fmt.Errorf("set acked uid=%s: %w", c.UserID, err)
		}
	}
	return nil
}
