package vulndb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scan is govulncheck -format json output in its shape: a vulnerability the
// code calls (two traces), one only in an imported package, one only in a
// required module.
const scan = `{"config":{"protocol_version":"v1.0.0","scanner_name":"govulncheck","go_version":"go1.26.8"}}
{"osv":{"id":"GO-2099-0001","summary":"Panic on two-block frames"}}
{"osv":{"id":"GO-2099-0002","summary":"Only imported"}}
{"osv":{"id":"GO-2099-0003","summary":"Only required"}}
{"finding":{"osv":"GO-2099-0001","fixed_version":"v1.2.3","trace":[{"module":"example.com/a","version":"v1.2.2","package":"example.com/a/zstd","function":"Decode","receiver":"*Decoder","position":{"filename":"zstd/dec.go","line":10}},{"module":"github.com/bosunhq/bosun","package":"github.com/bosunhq/bosun/executor","function":"lastLogs","position":{"filename":"executor/docker.go","line":516}}]}}
{"finding":{"osv":"GO-2099-0001","fixed_version":"v1.2.3","trace":[{"module":"example.com/a","version":"v1.2.2","package":"example.com/a/zstd","function":"Decode","receiver":"*Decoder"},{"module":"github.com/bosunhq/bosun","package":"github.com/bosunhq/bosun/proxy","function":"serve","position":{"filename":"proxy/server.go","line":5}}]}}
{"finding":{"osv":"GO-2099-0002","trace":[{"module":"example.com/b","version":"v0.1.0","package":"example.com/b"}]}}
{"finding":{"osv":"GO-2099-0003","trace":[{"module":"example.com/c","version":"v0.1.0"}]}}
`

func TestCheck_failsOnCalledVulnerabilityNotAccepted(t *testing.T) {
	var out strings.Builder
	err := Check(strings.NewReader(scan), &out, map[string]string{"GO-2099-0002": "only imported"})
	if err == nil || !strings.Contains(err.Error(), "GO-2099-0001") {
		t.Fatalf("Check = %v, want an error naming GO-2099-0001", err)
	}
	for _, want := range []string{
		"GO-2099-0001 example.com/a@v1.2.2 (fixed in v1.2.3): Panic on two-block frames",
		"executor/docker.go:516 github.com/bosunhq/bosun/executor.lastLogs calls example.com/a/zstd.Decoder.Decode",
		"NOT ACCEPTED",
		// Not called, so never reported: its acceptance is stale.
		"no longer found (remove them from the list): GO-2099-0002",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "GO-2099-0003 ") || strings.Contains(out.String(), "proxy/server.go") {
		t.Errorf("report names a vulnerability the code does not call, or one twice:\n%s", out.String())
	}
}

func TestCheck_passesWhenEveryCalledVulnerabilityIsAccepted(t *testing.T) {
	var out strings.Builder
	if err := Check(strings.NewReader(scan), &out, map[string]string{"GO-2099-0001": "no release yet"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "accepted: no release yet") {
		t.Errorf("report does not give the reason:\n%s", out.String())
	}
}

func TestCheck_failsWithoutGovulncheckConfig(t *testing.T) {
	if err := Check(strings.NewReader(""), &strings.Builder{}, nil); err == nil {
		t.Fatal("Check of empty output passed")
	}
}

func TestReadAccepted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "accepted")
	os.WriteFile(p, []byte("# why\n\nGO-2026-4887 no fixed version of github.com/docker/docker\n"), 0o644)
	got, err := ReadAccepted(p)
	if err != nil || got["GO-2026-4887"] != "no fixed version of github.com/docker/docker" || len(got) != 1 {
		t.Fatalf("ReadAccepted = %v, %v", got, err)
	}
	os.WriteFile(p, []byte("GO-2026-4887\n"), 0o644)
	if _, err := ReadAccepted(p); err == nil {
		t.Fatal("an ID without a reason was accepted")
	}
}
