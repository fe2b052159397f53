package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	v, err := NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(claims jwt.Claims, method jwt.SigningMethod, key any) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good, _ := Mint(secret, "alice", time.Hour)
	expired, _ := Mint(secret, "alice", -time.Hour)
	other, _ := Mint([]byte("other"), "alice", time.Hour)
	noExp := mint(jwt.RegisteredClaims{Subject: "alice"}, jwt.SigningMethodHS256, secret)
	badSub := mint(jwt.RegisteredClaims{Subject: "al ice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, jwt.SigningMethodHS256, secret)
	hs512 := mint(jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, jwt.SigningMethodHS512, secret)
	none := mint(jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)

	for _, tc := range []struct {
		name, token, wantUID string
		wantErr              error
	}{
		{"valid", good, "alice", nil},
		{"expired", expired, "", ErrExpiredToken},
		{"wrong secret", other, "", ErrInvalidToken},
		{"no exp", noExp, "", ErrInvalidToken},
		{"invalid sub", badSub, "", ErrInvalidUser},
		{"other algorithm", hs512, "", ErrInvalidToken},
		{"alg none", none, "", ErrInvalidToken},
		{"garbage", "not.a.jwt", "", ErrInvalidToken},
		{"empty", "", "", ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, err := v.Verify(tc.token)
			if uid != tc.wantUID || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Verify = %q, %v; want %q, %v", uid, err, tc.wantUID, tc.wantErr)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "A-z_09": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a.b": false, "a b": false, "a*": false, "a>": false, "é": false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v; want %v", s, got, want)
		}
	}
}

// FuzzVerify: untrusted token strings never panic the verifier and never
// verify without the secret.
func FuzzVerify(f *testing.F) {
	good, _ := Mint([]byte("k"), "alice", time.Hour)
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("...")
	v, _ := NewVerifier([]byte("fuzz-secret-not-k"))
	f.Fuzz(func(t *testing.T, tok string) {
		if uid, err := v.Verify(tok); err == nil {
			t.Fatalf("token %q verified as %q without the secret", tok, uid)
		}
	})
}
