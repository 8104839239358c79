package vulndb

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// ReadAccepted reads the vulnerabilities `make lint` lets pass: one per
// line, its ID and then why it is accepted ("GO-2026-4887 no fixed
// version: ..."); blank lines and lines starting with # are skipped. Every
// ID needs a reason.
func ReadAccepted(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	accepted := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, _ := strings.Cut(line, " ")
		if !validID.MatchString(id) || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: want a vulnerability ID and the reason it is accepted, got %q", path, n, line)
		}
		accepted[id] = strings.TrimSpace(reason)
	}
	return accepted, sc.Err()
}

// The parts of govulncheck's -format json stream Check reads.
type message struct {
	Config *struct {
		GoVersion string `json:"go_version"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
	} `json:"position"`
}

func (f frame) symbol() string {
	s := f.Function
	if f.Receiver != "" {
		s = strings.TrimPrefix(f.Receiver, "*") + "." + s
	}
	return f.Package + "." + s
}

// Check reads govulncheck's -format json output from r and reports, on w,
// every vulnerability the code calls (a finding whose trace reaches a
// function; vulnerabilities only in imported packages or required modules
// are not reported, as govulncheck's own text output does). It returns an
// error when one of them is not in accepted. Accepted IDs that no longer
// turn up are named so the list can shrink.
func Check(r io.Reader, w io.Writer, accepted map[string]string) error {
	dec := json.NewDecoder(r)
	summary := map[string]string{}
	type called struct {
		module, fixed string
		trace         []frame
	}
	found := map[string]*called{}
	sawConfig := false
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("read govulncheck output: %w", err)
		}
		switch {
		case m.Config != nil:
			sawConfig = true
		case m.OSV != nil:
			summary[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil:
			t := m.Finding.Trace
			if len(t) == 0 || t[0].Function == "" || found[m.Finding.OSV] != nil {
				continue
			}
			found[m.Finding.OSV] = &called{module: t[0].Module + "@" + t[0].Version, fixed: m.Finding.FixedVersion, trace: t}
		}
	}
	if !sawConfig {
		return fmt.Errorf("govulncheck output has no config message: did it run?")
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var unaccepted []string
	for _, id := range ids {
		c := found[id]
		fixed := c.fixed
		if fixed == "" {
			fixed = "no fixed version"
		} else {
			fixed = "fixed in " + fixed
		}
		verdict := "NOT ACCEPTED"
		if reason, ok := accepted[id]; ok {
			verdict = "accepted: " + reason
		} else {
			unaccepted = append(unaccepted, id)
		}
		fmt.Fprintf(w, "%s %s (%s): %s\n", id, c.module, fixed, summary[id])
		caller := c.trace[len(c.trace)-1]
		at := caller.symbol()
		if caller.Position != nil {
			at = fmt.Sprintf("%s:%d %s", caller.Position.Filename, caller.Position.Line, at)
		}
		fmt.Fprintf(w, "    %s calls %s\n    %s\n", at, c.trace[0].symbol(), verdict)
	}
	var stale []string
	for id := range accepted {
		if found[id] == nil {
			stale = append(stale, id)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		fmt.Fprintf(w, "accepted but no longer found (remove them from the list): %s\n", strings.Join(stale, " "))
	}
	if len(unaccepted) > 0 {
		return fmt.Errorf("%d vulnerabilities the code calls are not accepted: %s (fix them: bump the module, or accept one with its reason)", len(unaccepted), strings.Join(unaccepted, " "))
	}
	fmt.Fprintf(w, "govulncheck: %d called vulnerabilities, all accepted\n", len(ids))
	return nil
}
