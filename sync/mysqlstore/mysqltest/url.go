package mysqltest

import (
	"testing"

	"github.com/go-sql-driver/mysql"
)

// NewURL is NewDSN as a parleyd --store URL: mysql://user[:pass]@host:port/db.
func NewURL(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(NewDSN(t))
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	userinfo := cfg.User
	if cfg.Passwd != "" {
		userinfo += ":" + cfg.Passwd
	}
	return "mysql://" + userinfo + "@" + cfg.Addr + "/" + cfg.DBName
}
