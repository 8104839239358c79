package testutil

import (
	"strings"
	"sync"
	"testing"
)

func TestSyncBuffer_concurrentWritesAndReads(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got, want := b.String(), strings.Repeat("x", 400); got != want {
		t.Errorf("after 400 writes of one byte: got %d bytes, want %d", len(got), len(want))
	}
}
