package state

import (
	"os"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

// TestMain stops the PostgreSQL server that testbed.Postgres starts for this
// test binary.
func TestMain(m *testing.M) { os.Exit(testbed.PostgresMain(m)) }
