package mysqlstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/go-sql-driver/mysql"
)

// ParseURL converts mysql://user:pass@host:port/db?param=value to the
// go-sql-driver/mysql DSN that Open takes. The port defaults to 3306; query
// parameters are driver DSN parameters (tls, timeout, …) or, when the driver
// does not know them, session variables, as in a DSN. User and password may
// be percent-encoded.
func ParseURL(u string) (dsn string, err error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("parse mysql url: %w", err)
	}
	if pu.Scheme != "mysql" {
		return "", fmt.Errorf("parse mysql url: scheme %q, want mysql", pu.Scheme)
	}
	if pu.Opaque != "" || pu.Host == "" {
		return "", errors.New("parse mysql url: no host (want mysql://user:pass@host:port/db)")
	}
	// Let the driver parse the parameters exactly as it would in a DSN.
	cfg, err := mysql.ParseDSN("/?" + pu.RawQuery)
	if err != nil {
		return "", fmt.Errorf("parse mysql url: parameters: %w", err)
	}
	if pu.User != nil {
		cfg.User = pu.User.Username()
		cfg.Passwd, _ = pu.User.Password()
	}
	host, port := pu.Hostname(), pu.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(host, port)
	db, err := url.PathUnescape(pu.EscapedPath())
	if err != nil {
		return "", fmt.Errorf("parse mysql url: database: %w", err)
	}
	if len(db) > 0 && db[0] == '/' {
		db = db[1:]
	}
	cfg.DBName = db
	return cfg.FormatDSN(), nil
}
