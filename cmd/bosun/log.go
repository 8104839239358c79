package main

import (
	"fmt"
	"log/slog"
)

// logLevel is the level of the one-shot commands' logs: warnings and errors
// only unless BOSUN_LOG_LEVEL says otherwise (debug, info, warn, error). A
// value that is none of those is an error: run refuses to start a command.
func logLevel(e env) (slog.Level, error) {
	level := slog.LevelWarn
	v := e.getenv("BOSUN_LOG_LEVEL")
	if v == "" {
		return level, nil
	}
	if err := level.UnmarshalText([]byte(v)); err != nil {
		return level, fmt.Errorf("BOSUN_LOG_LEVEL=%q: want debug, info, warn or error", v)
	}
	return level, nil
}

// cliLogger is the logger of the one-shot commands: text on stderr at
// logLevel. The commands report progress on stdout themselves.
func cliLogger(e env) *slog.Logger {
	level, _ := logLevel(e) // run has refused a bad BOSUN_LOG_LEVEL already
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}
