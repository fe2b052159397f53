package client

import (
	"errors"
	"strings"

	"github.com/parleyim/parley/schemas/wirepb"
)

// Errors returned by the client. Callers branch on them with errors.Is.
var (
	// ErrClosed is returned by calls on a client after Close.
	ErrClosed = errors.New("client: closed")
	// ErrTimeout means a request got no reply within Config.RequestTimeout.
	// Send and Sync retry it themselves.
	ErrTimeout = errors.New("client: request timed out")
	// ErrDisconnected means the connection was lost while a request was in
	// flight, or wraps why the connection ended. Send and Sync retry it
	// themselves once the client has reconnected.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrFrameTooLarge means a frame is over the size limit: an outgoing frame
	// over the protocol's default 64 KiB (nothing was sent), or an incoming
	// one over Config.MaxFrameSize (the connection is dropped).
	ErrFrameTooLarge = errors.New("client: frame too large")
	// ErrProtocol means the server sent something the protocol does not
	// allow, such as a reply of the wrong type.
	ErrProtocol = errors.New("client: protocol violation")
)

// Error is an error the server reported in an Error frame. Temporary says
// that retrying the same request later may succeed; Send and Sync retry
// temporary errors themselves and return the others.
//
// errors.Is(err, &Error{Code: c}) matches any *Error with code c.
type Error struct {
	// Code is the server's error code.
	Code wirepb.ErrorCode
	// Message is human-readable detail; never parse it.
	Message string
	// Temporary is the server's retry hint.
	Temporary bool
	// ClientMsgID names the Send that failed, when there was one.
	ClientMsgID string
}

// Error implements error.
func (e *Error) Error() string {
	s := "parley: " + codeName(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// codeName turns ERROR_CODE_PERMISSION_DENIED into "permission_denied".
func codeName(c wirepb.ErrorCode) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "ERROR_CODE_"))
}

func wireError(e *wirepb.Error) *Error {
	return &Error{Code: e.GetCode(), Message: e.GetMessage(), Temporary: e.GetTemporary(), ClientMsgID: e.GetClientMsgId()}
}

// retryable reports whether a request that failed with err may succeed if
// sent again with the same idempotency key.
func retryable(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrDisconnected) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Temporary
}

// fatalSignIn reports whether a sign-in failure will not go away by
// reconnecting with the same configuration, so the client must stop.
func fatalSignIn(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED,
		wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
		wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED,
		wirepb.ErrorCode_ERROR_CODE_NOT_FOUND,
		wirepb.ErrorCode_ERROR_CODE_BAD_FRAME,
		wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME,
		wirepb.ErrorCode_ERROR_CODE_REPLACED:
		return true
	}
	return false
}
