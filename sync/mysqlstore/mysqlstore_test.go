package mysqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/migrations"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
	"github.com/parleyim/parley/sync/mailbox"
	"github.com/parleyim/parley/sync/mysqlstore/mysqltest"
	"github.com/parleyim/parley/sync/storetest"
)

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openTest opens the store on dsn and closes it when t ends.
func openTest(t testing.TB, dsn string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const conns = 8
	s, err := Open(ctx, dsn, Options{Logger: testLogger(t), MaxOpenConns: conns})
	if err != nil {
		t.Fatalf("Open error = %v; want nil", err)
	}
	t.Cleanup(func() { s.Close() })
	t.Cleanup(func() { checkNoTransactionLeft(t, s, conns) }) // before Close
	return s
}

// checkNoTransactionLeft takes every connection of s's pool at once and
// fails t if one is still held by the store or sits inside a transaction:
// appends start their transaction inside a script, which database/sql does
// not see, so a connection returned mid-transaction would hand the next
// caller someone else's transaction.
func checkNoTransactionLeft(t testing.TB, s *Store, conns int) {
	if s.closed.Load() { // the test closed it
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Errorf("pool connection %d of %d: %v (one still held by the store?)", len(held)+1, conns, err)
			return
		}
		held = append(held, c)
		var in int
		if err := c.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&in); err != nil {
			t.Logf("cannot tell open transactions on this server: %v", err) // MySQL has no @@in_transaction
			return
		}
		if in != 0 {
			t.Errorf("a pooled connection is inside a transaction")
		}
	}
}

func TestConformance(t *testing.T) {
	dsn := storetest.PerTest(func(t *testing.T) string { return mysqltest.NewDSN(t) })
	storetest.Run(t, func(t *testing.T) mailbox.Store { return openTest(t, dsn(t)) })
}

func TestDirectoryConformance(t *testing.T) {
	storetest.RunDirectory(t, func(t *testing.T) directory.Store { return openTest(t, mysqltest.NewDSN(t)) })
}

func TestMigrationsConcurrentOpen(t *testing.T) {
	dsn := mysqltest.NewDSN(t)
	const nodes = 4
	var wg sync.WaitGroup
	for range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			s, err := Open(ctx, dsn, Options{Logger: testLogger(t)})
			if err != nil {
				t.Errorf("Open error = %v; want nil", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()

	s := openTest(t, dsn)
	rows, err := s.db.QueryContext(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var got []uint64
	for rows.Next() {
		var v uint64
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got = append(got, v)
	}
	files, err := loadMigrations(migrations.MySQL)
	if err != nil {
		t.Fatalf("loadMigrations error = %v", err)
	}
	var want []uint64
	for _, f := range files {
		want = append(want, f.version)
	}
	if !slices.Equal(got, want) {
		t.Errorf("schema_migrations versions = %v; want %v", got, want)
	}
}

func TestLoadMigrations(t *testing.T) {
	files, err := loadMigrations(migrations.MySQL)
	if err != nil {
		t.Fatalf("loadMigrations error = %v; want nil", err)
	}
	if len(files) == 0 || files[0].version != 1 || files[0].name != "0001_init" {
		t.Fatalf("loadMigrations = %+v; want 0001_init first", files)
	}
	for i, f := range files {
		if f.version != uint64(i+1) {
			t.Errorf("migration %d has version %d; want %d (no gaps)", i, f.version, i+1)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"-- only a comment\n", nil},
		{"SELECT 1;", []string{"SELECT 1"}},
		{"-- c\nCREATE TABLE a (\n  x INT -- trailing\n);\n\n-- next\nCREATE TABLE b (y INT);\n",
			[]string{"CREATE TABLE a (\n  x INT -- trailing\n)", "CREATE TABLE b (y INT)"}},
		{"SELECT 'a;b'\n  , 2;\nSELECT 3", []string{"SELECT 'a;b'\n  , 2", "SELECT 3"}},
	}
	for _, tt := range tests {
		if got := splitStatements(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitStatements(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "mysql://root@127.0.0.1:3306/parley", want: "root@tcp(127.0.0.1:3306)/parley"},
		{in: "mysql://root@db.internal/parley", want: "root@tcp(db.internal:3306)/parley"},
		{in: "mysql://app:s3cret@db:3307/parley?timeout=5s&tls=true", want: "app:s3cret@tcp(db:3307)/parley?timeout=5s&tls=true"},
		{in: "mysql://app:p%40ss%3Aw%2Frd@db/parley", want: "app:p@ss:w/rd@tcp(db:3306)/parley"},
		{in: "mysql://root@[::1]:3306/parley", want: "root@tcp([::1]:3306)/parley"},
		{in: "mysql://root@db/parley?sql_mode=%27STRICT_ALL_TABLES%27", want: "root@tcp(db:3306)/parley?sql_mode=%27STRICT_ALL_TABLES%27"},
		{in: "mysql://root@db:3306", want: "root@tcp(db:3306)/"},
		{in: "postgres://root@db/parley", wantErr: true},
		{in: "mysql:///parley", wantErr: true},
		{in: "mysql://root@db/parley?timeout=soon", wantErr: true},
		{in: "::", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// BenchmarkAppend measures one transaction appending one message to each of
// batch users (a group commit of batch parts).
//
//	go test ./sync/mysqlstore -run '^$' -bench Append -benchtime 2000x
func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) mailbox.Store {
		s, err := Open(b.Context(), mysqltest.NewDSN(b), Options{})
		if err != nil {
			b.Fatalf("Open error = %v", err)
		}
		return s
	})
}

// TestAppendSeveralRoundTrips appends a batch whose statements need more
// than one round trip (over maxBytesPerRoundTrip of blobs), first clean,
// then with a duplicate msg id in the last round trip, which must fail the
// whole transaction: the careful retry reports it and stores the rest once.
func TestAppendSeveralRoundTrips(t *testing.T) {
	s := openTest(t, mysqltest.NewDSN(t))
	ctx := t.Context()
	body := make([]byte, maxBytesPerRoundTrip/3)
	part := func(uid string, after uint64, ids ...string) mailbox.Append {
		a := mailbox.Append{UserID: uid, After: after}
		for _, id := range ids {
			a.Items = append(a.Items, mailbox.Item{
				Message: &wirepb.Message{MsgId: id, Body: body, FromUser: uid},
				Outbox:  body,
			})
		}
		return a
	}
	res, err := s.Append(ctx, []mailbox.Append{part("ann", 0, "a1", "a2", "a3"), part("bob", 0, "b1", "b2")})
	if err != nil || res[0].Err != nil || res[1].Err != nil || res[0].MaxSeq != 3 || res[1].MaxSeq != 2 {
		t.Fatalf("first Append = %+v, %v; want ann at 3 and bob at 2", res, err)
	}
	// bob's b2 is stored already; it is in the batch's last statements.
	res, err = s.Append(ctx, []mailbox.Append{part("ann", 3, "a4", "a5"), part("bob", 2, "b3", "b2")})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("second Append = %+v, %v; want both parts committed", res, err)
	}
	if got := res[1].Items[1]; !got.Duplicate || got.Seq != 2 {
		t.Errorf("bob's b2 = %+v; want the duplicate at seq 2", got)
	}
	for uid, want := range map[string][]string{"ann": {"a1", "a2", "a3", "a4", "a5"}, "bob": {"b1", "b2", "b3"}} {
		msgs, err := s.Fetch(ctx, uid, 0, 100, 100)
		if err != nil {
			t.Fatalf("Fetch %s: %v", uid, err)
		}
		var ids []string
		for i, m := range msgs {
			if m.Seq != uint64(i+1) || len(m.Body) != len(body) {
				t.Errorf("%s entry %d: seq %d, body %d B; want seq %d, %d B", uid, i, m.Seq, len(m.Body), i+1, len(body))
			}
			ids = append(ids, m.MsgId)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("%s mailbox = %v; want %v", uid, ids, want)
		}
	}
}
