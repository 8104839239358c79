package state

import (
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

func TestPostgres_Conformance(t *testing.T) {
	testStore(t, func(t *testing.T) string { return testbed.Postgres(t) })
}

func TestPostgres_ExposesPool(t *testing.T) {
	s, err := OpenPostgres(t.Context(), testbed.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(*) FROM deployments").Scan(&n); err != nil || n != 0 {
		t.Errorf("query through Pool(): %d %v", n, err)
	}
	if err := s.DB().PingContext(t.Context()); err != nil {
		t.Errorf("DB(): %v", err)
	}
}

func TestPostgres_BadDSNHidesPassword(t *testing.T) {
	_, err := Open(t.Context(), "postgres://bosun:hunter2@127.0.0.1:1/x?connect_timeout=2")
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}
