package planner

import (
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
)

func TestInventory(t *testing.T) {
	fsys := fstest.MapFS{
		"fleet.yml":                {Data: []byte("servers:\n  web-2: {host: 10.0.0.12, tags: [web, us-east]}\n  web-1: 10.0.0.11\n")},
		"templates/rails.yml.tmpl": {Data: []byte("service: x\n")},
		"templates/app.yml.tmpl":   {Data: []byte("service: y\n")},
		"templates/notes.md":       {Data: []byte("not a template\n")},
	}
	servers, templates, err := Inventory(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(servers); got != "[{web-1 []} {web-2 [web us-east]}]" {
		t.Errorf("servers = %s", got)
	}
	if got := fmt.Sprint(templates); got != "[app rails]" {
		t.Errorf("templates = %s", got)
	}

	if s, tm, err := Inventory(fstest.MapFS{}); err != nil || len(s) != 0 || len(tm) != 0 {
		t.Errorf("an empty repository: %v %v %v", s, tm, err)
	}
	var cerrs ConfigErrors
	if _, _, err := Inventory(fstest.MapFS{"fleet.yml": {Data: []byte("servers: [oops\n")}}); !errors.As(err, &cerrs) {
		t.Errorf("a broken fleet.yml: %v, want ConfigErrors", err)
	}
}
