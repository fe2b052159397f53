package scenario

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

func TestRetryTemporary(t *testing.T) {
	refused := &callError{&wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED, Temporary: true}}
	forGood := &callError{&wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED}}
	for _, tc := range []struct {
		name        string
		errs        []error // f's results, in order; nil after the last
		wantCalls   int
		wantRetries int64
		wantErr     error
	}{
		{"first try", nil, 1, 0, nil},
		{"refused twice", []error{refused, refused}, 3, 2, nil},
		{"wrapped refusal", []error{errors.Join(errors.New("sign in"), refused)}, 2, 1, nil},
		{"for good", []error{forGood, refused}, 1, 0, forGood},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls int
			var retries atomic.Int64
			err := retryTemporary(context.Background(), time.Millisecond, 2*time.Millisecond, &retries, func() error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("err = %v; want %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls || retries.Load() != tc.wantRetries {
				t.Errorf("calls, retries = %d, %d; want %d, %d", calls, retries.Load(), tc.wantCalls, tc.wantRetries)
			}
		})
	}
}

func TestRetryTemporaryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	refused := &callError{&wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE}}
	var retries atomic.Int64
	err := retryTemporary(ctx, time.Millisecond, 5*time.Millisecond, &retries, func() error { return refused })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, refused) {
		t.Errorf("err = %v; want the refusal and the context's deadline", err)
	}
	if retries.Load() == 0 {
		t.Error("no retries before the deadline")
	}
}
