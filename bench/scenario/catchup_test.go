package scenario

import (
	"context"
	"testing"
	"time"
)

func TestSync(t *testing.T) {
	res, err := Sync(context.Background(), SyncConfig{
		Messages: 600, Senders: 4, Inflight: 2,
		Common: Common{Duration: 20 * time.Second, Progress: t.Output()},
	})
	if err != nil {
		t.Fatal(err)
	}
	res.WriteText(t.Output())
	if !res.Pass {
		t.Fatalf("sync did not pass")
	}
}
