package state_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bosunhq/bosun/state"
)

// Open a SQLite store, record what was applied, and take a lease.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "bosun-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	st, err := state.Open(ctx, "sqlite://"+filepath.Join(dir, "state.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	_ = st.PutApplied(ctx, state.Applied{Repo: "acme/deploy", Service: "shop", Role: "web", Host: "web-1",
		Version: "3f2a9c1d0b7e", Commit: "9fceb02", Spec: []byte(`{"image":"ghcr.io/acme/shop:v1"}`)})
	applied, _ := st.ListApplied(ctx, "acme/deploy")
	for _, a := range applied {
		fmt.Println(a.Service, a.Role, a.Host, a.Version)
	}

	ok, _, _ := st.AcquireLock(ctx, "repo:acme/deploy", "replica-1", 30*time.Second)
	taken, holder, _ := st.AcquireLock(ctx, "repo:acme/deploy", "replica-2", 30*time.Second)
	fmt.Println(ok, taken, holder.Owner)
	// Output:
	// shop web web-1 3f2a9c1d0b7e
	// true false replica-1
}
