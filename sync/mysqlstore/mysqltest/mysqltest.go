// Package mysqltest gives tests a fresh MySQL/MariaDB database of their own.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultDSN is the server NewDSN uses when PARLEY_MYSQL_DSN is unset: the
// local MariaDB of the dev container, root without a password.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/"

// Environment variables NewDSN reads.
const (
	// EnvDSN names the server (a go-sql-driver DSN; the database part is
	// ignored). The user must be allowed to CREATE and DROP databases.
	EnvDSN = "PARLEY_MYSQL_DSN"
	// EnvRequire set to 1 turns "server unreachable" from a skip into a
	// failure, so CI cannot pass by skipping.
	EnvRequire = "PARLEY_REQUIRE_SERVICES"
)

// unreachable remembers the first failed connection, so later tests of the
// process skip at once instead of each waiting for a dial timeout.
var unreachable struct {
	mu  sync.Mutex
	err error
}

// NewDSN creates a database named parley_t_<random hex> on the server of
// PARLEY_MYSQL_DSN (default DefaultDSN), drops it when t ends, and returns a
// DSN naming it. When the server is unreachable it skips t, or fails t when
// PARLEY_REQUIRE_SERVICES=1. Stores opened on the DSN must be closed before
// the drop, i.e. by a cleanup registered after NewDSN returns.
func NewDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		base = DefaultDSN
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("mysqltest: parse %s=%q: %v", EnvDSN, base, err)
	}
	cfg.DBName = ""
	cfg.Logger = &mysql.NopLogger{}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	where := fmt.Sprintf("%s(%s) as %q", cfg.Net, cfg.Addr, cfg.User)

	unreachable.mu.Lock()
	prev := unreachable.err
	unreachable.mu.Unlock()
	if prev != nil {
		skipOrFail(t, where, prev)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	admin, err := openAdmin(ctx, cfg)
	if err != nil {
		unreachable.mu.Lock()
		unreachable.err = err
		unreachable.mu.Unlock()
		skipOrFail(t, where, err)
	}
	defer admin.Close()

	name := "parley_t_" + hex.EncodeToString(randBytes(8))
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("mysqltest: create database %s on %s: %v", name, where, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := openAdmin(ctx, cfg)
		if err != nil {
			t.Errorf("mysqltest: drop database %s: %v", name, err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("mysqltest: drop database %s: %v", name, err)
		}
	})
	db := cfg.Clone()
	db.DBName = name
	return db.FormatDSN()
}

// openAdmin connects to the server without a database and pings it.
func openAdmin(ctx context.Context, cfg *mysql.Config) (*sql.DB, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func skipOrFail(t testing.TB, where string, err error) {
	t.Helper()
	msg := fmt.Sprintf("mysql not reachable at %s: %v; set %s to a server where the user may CREATE DATABASE (default %q)",
		where, err, EnvDSN, DefaultDSN)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + " (failing: " + EnvRequire + "=1)")
	}
	t.Skip(msg + " (skipping: set " + EnvRequire + "=1 to fail instead)")
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}
