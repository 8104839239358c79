package daemon

import (
	"context"
	"crypto/sha256"
	"os"
	"time"

	"github.com/bosunhq/bosun/watcher"
)

// WatchConfig reloads the daemon (Reload) whenever the config file at path
// changes, until ctx ends. A file that does not load is logged and the
// running config kept; so is a change that Reload refuses. It returns an
// error only when the file cannot be watched at all.
func (d *Daemon) WatchConfig(ctx context.Context, path string) error {
	changed, err := watcher.WatchFile(ctx, path, 200*time.Millisecond, d.log)
	if err != nil {
		return err
	}
	last := fileHash(path)
	for range changed {
		h := fileHash(path)
		if h == last {
			continue
		}
		last = h
		cfg, err := LoadConfig(path)
		if err != nil {
			d.log.ErrorContext(ctx, "config change refused; keeping the running config", "err", err)
			continue
		}
		if err := d.Reload(ctx, cfg); err != nil {
			d.log.ErrorContext(ctx, "config reload failed", "err", err)
		}
	}
	return nil
}

func fileHash(path string) [32]byte {
	b, _ := os.ReadFile(path)
	return sha256.Sum256(b)
}
