package dashboard

import (
	"os"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.PostgresMain(m)) }
