package main

import (
	"log/slog"
)

// cliLogger is the logger of the one-shot commands: text on stderr, warnings
// and errors only unless BOSUN_LOG_LEVEL says otherwise (debug, info, warn,
// error). The commands report progress on stdout themselves.
func cliLogger(e env) *slog.Logger {
	level := slog.LevelWarn
	if v := e.getenv("BOSUN_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			level = slog.LevelWarn
		}
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}
