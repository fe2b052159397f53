// Package auth verifies the JWTs that a business server issues to its users
// and mints development tokens.
//
// A token is an HS256 JWT whose sub claim is the user id and whose exp claim
// is required. The edge verifies it locally: no round trip per sign-in.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleyim/parley/schemas/wirepb"
)

// DevSecret is the HS256 secret parleyd uses when none is configured. It is
// fine for a laptop and wrong for anything else: parleyd logs a warning.
const DevSecret = "parley-dev-secret-change-me"

// Errors returned by Verifier.Verify.
var (
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrExpiredToken = errors.New("auth: token expired")
	ErrInvalidUser  = errors.New("auth: invalid user id in sub")
)

// Verifier checks tokens. Immutable after NewVerifier; safe for concurrent use.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for HS256 tokens signed with secret.
func NewVerifier(secret []byte) (*Verifier, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth: empty secret")
	}
	return &Verifier{
		secret: secret,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
		),
	}, nil
}

// Verify returns the user id of a valid token.
func (v *Verifier) Verify(token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", ErrExpiredToken
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if !ValidID(claims.Subject) {
		return "", ErrInvalidUser
	}
	return claims.Subject, nil
}

// Mint returns an HS256 token for uid that expires after ttl.
func Mint(secret []byte, uid string, ttl time.Duration) (string, error) {
	if !ValidID(uid) {
		return "", ErrInvalidUser
	}
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   uid,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// ValidID reports whether s is a valid user or device id: 1–64 characters of
// [A-Za-z0-9_-], safe as a NATS subject token.
func ValidID(s string) bool { return wirepb.ValidID(s) }
