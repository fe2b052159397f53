package scenario

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if ran, code := RunAgent(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
