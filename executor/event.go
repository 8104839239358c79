package executor

import (
	"fmt"
	"strings"
	"time"
)

// Step names one step of a rollout on one host.
type Step string

// The steps, in the order a host goes through them (see doc.go).
const (
	StepLock     Step = "lock"     // waiting for or taking the service's lock (no host)
	StepConnect  Step = "connect"  // SSH connection and Docker API
	StepProxy    Step = "proxy"    // network bosun and the bosun-proxy container
	StepPull     Step = "pull"     // image pull (skipped for a retained container)
	StepStart    Step = "start"    // create (or reuse) and start the new container
	StepHealth   Step = "health"   // wait until healthy (proxied: the proxy's deploy does this)
	StepSwitch   Step = "switch"   // proxy route to the new container; the old one drains
	StepStop     Step = "stop"     // stop the old container(s)
	StepRecord   Step = "record"   // applied state written
	StepPrune    Step = "prune"    // retention of stopped containers
	StepCanary   Step = "canary"   // watching the canary batch
	StepRollback Step = "rollback" // a switched host going back to its previous version
	StepRemove   Step = "remove"   // a removed service's containers and route
	StepDone     Step = "done"     // the service's rollout finished (no host)
	StepTakeover Step = "takeover" // a server taken over from Kamal (no service; kamal.go)
)

func (s Step) String() string { return string(s) }

// EventStatus is what happened in a step.
type EventStatus string

// Event statuses.
const (
	StatusStarted EventStatus = "started"
	StatusOK      EventStatus = "ok"
	StatusFailed  EventStatus = "failed"
	StatusSkipped EventStatus = "skipped"
	StatusWaiting EventStatus = "waiting"
)

func (s EventStatus) String() string { return string(s) }

// Event is one step of a rollout on one host, given to Config.Progress as
// it happens and recorded as a deployment event in the store. Host and Role
// are empty for service-wide events (lock, done). Message never holds a
// secret value.
type Event struct {
	Time         time.Time
	DeploymentID int64 // 0 when no store is configured
	Service      string
	Role         string
	Host         string
	Version      string
	Step         Step
	Status       EventStatus
	Message      string
	// Logs are the container's last log lines when a start, health or
	// canary step failed (at most eventLogBytes, secret values redacted):
	// recorded in the store event after the message, left out of String
	// (the terminal gets them once, with the error).
	Logs string
}

// String renders the event on one line for terminals and logs.
func (ev Event) String() string {
	var b strings.Builder
	b.WriteString(ev.Service)
	if ev.Role != "" {
		b.WriteString("/" + ev.Role)
	}
	if ev.Host != "" && ev.Service == "" {
		b.WriteString(ev.Host)
	} else if ev.Host != "" {
		b.WriteString("@" + ev.Host)
	}
	fmt.Fprintf(&b, " %s %s", ev.Step, ev.Status)
	if ev.Version != "" {
		b.WriteString(" " + ev.Version)
	}
	if ev.Message != "" {
		b.WriteString(": " + ev.Message)
	}
	return b.String()
}
