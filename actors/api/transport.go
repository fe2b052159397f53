package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Names of the transports.
const (
	// ServiceName is the micro service name (`nats micro info parley`).
	ServiceName = "parley"
	// SubjectPrefix prefixes every method's NATS subject.
	SubjectPrefix = "parley.api"
	// KeyHeader carries the API key on NATS requests.
	KeyHeader = "Parley-Api-Key"
	// HTTPPrefix is the path of the HTTP API; the method follows it.
	HTTPPrefix = "/api/v1/"
	// MaxRequest caps a request body.
	MaxRequest = 1 << 20
	// requestTimeout bounds one request.
	requestTimeout = 15 * time.Second
)

// ErrorBody is the JSON of a failed request, on both transports.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"` // the wire ErrorCode without its prefix, e.g. "NOT_FOUND"
		Message string `json:"message"`
	} `json:"error"`
}

// status maps a wire error code to an HTTP status.
func status(code wirepb.ErrorCode) int {
	switch code {
	case wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:
		return http.StatusBadRequest
	case wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE:
		return http.StatusRequestEntityTooLarge
	case wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED:
		return http.StatusUnauthorized
	case wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, wirepb.ErrorCode_ERROR_CODE_BLOCKED:
		return http.StatusForbidden
	case wirepb.ErrorCode_ERROR_CODE_NOT_FOUND:
		return http.StatusNotFound
	case wirepb.ErrorCode_ERROR_CODE_ALREADY_EXISTS:
		return http.StatusConflict
	case wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED:
		return http.StatusTooManyRequests
	case wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// failure turns err into (HTTP status, JSON body). Errors that are not
// refusals are logged and reported as UNAVAILABLE without their detail.
func (s *Service) failure(method string, err error) (int, []byte) {
	var refusal *social.Error
	code, msg := wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the server could not complete the request; retry"
	if errors.As(err, &refusal) {
		code, msg = refusal.Code, refusal.Msg
	} else {
		s.log.Warn("api request failed", "method", method, "err", err)
	}
	var b ErrorBody
	b.Error.Code = strings.TrimPrefix(code.String(), "ERROR_CODE_")
	b.Error.Message = msg
	out, _ := json.Marshal(b)
	return status(code), out
}

func (s *Service) keyOK(key string) bool {
	return s.cfg.APIKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) == 1
}

var errKey = errorf(wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "missing or wrong API key")

// serve runs one authenticated request and returns (status, JSON body).
func (s *Service) serve(ctx context.Context, key, method string, params []byte) (int, []byte) {
	if !s.keyOK(key) {
		return s.failure(method, errKey)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := s.Do(ctx, method, params)
	if err != nil {
		return s.failure(method, err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return s.failure(method, fmt.Errorf("encode result: %w", err))
	}
	return http.StatusOK, b
}

// ServeHTTP serves POST /api/v1/<method>.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, HTTPPrefix)
	write := func(code int, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		_, body := s.failure(method, errorf(wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "use POST with a JSON body"))
		write(http.StatusMethodNotAllowed, body)
		return
	}
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if key == "" {
		key = r.Header.Get("X-Api-Key")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequest))
	if err != nil {
		write(s.failure(method, errorf(wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, "request body over %d bytes", MaxRequest)))
		return
	}
	write(s.serve(r.Context(), key, method, body))
}

// Register adds the micro service "parley" with one endpoint per method on
// parley.api.<method>. The caller stops it (Service.Stop) at shutdown.
func (s *Service) Register(version string) (micro.Service, error) {
	svc, err := micro.AddService(s.cfg.NATS, micro.Config{
		Name:        ServiceName,
		Version:     version,
		Description: "Parley server API (docs/API.md); API key in the " + KeyHeader + " header",
	})
	if err != nil {
		return nil, fmt.Errorf("api: add micro service: %w", err)
	}
	g := svc.AddGroup(SubjectPrefix)
	for _, name := range Methods() {
		// Handled on the endpoint's subscription goroutine: micro reads the
		// request's outcome after the handler returns, so it must not
		// answer later. Methods run concurrently with each other.
		h := micro.HandlerFunc(func(req micro.Request) {
			code, body := s.serve(context.Background(), req.Headers().Get(KeyHeader), name, req.Data())
			if code != http.StatusOK {
				var eb ErrorBody
				_ = json.Unmarshal(body, &eb)
				_ = req.Error(strconv.Itoa(code), eb.Error.Code+": "+eb.Error.Message, body)
				return
			}
			_ = req.Respond(body)
		})
		// Endpoint names allow [A-Za-z0-9_-]: group.members.add → group_members_add.
		if err := g.AddEndpoint(strings.ReplaceAll(name, ".", "_"), h, micro.WithEndpointSubject(name)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("api: add endpoint %s: %w", name, err)
		}
	}
	return svc, nil
}
