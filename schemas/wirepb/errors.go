package wirepb

// Temporary reports whether a request that failed with c may succeed if
// retried later with the same idempotency key, or (for a closing error) if
// the device reconnects.
func (c ErrorCode) Temporary() bool {
	switch c {
	case ErrorCode_ERROR_CODE_RATE_LIMITED,
		ErrorCode_ERROR_CODE_UNAVAILABLE,
		ErrorCode_ERROR_CODE_IDLE_TIMEOUT,
		ErrorCode_ERROR_CODE_SLOW_CONSUMER,
		ErrorCode_ERROR_CODE_SHUTTING_DOWN:
		return true
	}
	return false
}

// ErrorFrame returns a Frame answering request id with an Error.
func ErrorFrame(id uint64, code ErrorCode, msg, clientMsgID string) *Frame {
	return &Frame{Id: id, Body: &Frame_Error{Error: &Error{
		Code: code, Message: msg, Temporary: code.Temporary(), ClientMsgId: clientMsgID,
	}}}
}
