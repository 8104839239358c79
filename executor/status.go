package executor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/bosunhq/bosun/planner"
)

// ContainerStatus is one of bosun's containers on a server, read live.
type ContainerStatus struct {
	Host      string
	Service   string
	Role      string
	Version   string
	Commit    string
	Container string // name
	State     string // Docker's: running, paused (the role's standby, x-bosun.standby), exited, …
	Health    string // healthy, unhealthy, starting, or "" without a Docker health check
	Err       error  // set (and the rest empty but Host) when the host could not be read
}

// Status reads bosun's containers on the hosts: running ones and paused
// standbys, and also the retained stopped ones when all is set. Hosts that cannot be reached get
// one entry with Err set; the returned error is then non-nil too. The list is
// sorted by service, role, host and container.
func (e *Executor) Status(ctx context.Context, hosts []planner.Host, all bool) ([]ContainerStatus, error) {
	var (
		mu   sync.Mutex
		out  []ContainerStatus
		errs []string
		wg   sync.WaitGroup
	)
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.sem <- struct{}{}
			defer func() { <-e.sem }()
			st, err := e.hostStatus(ctx, h, all)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				out = append(out, ContainerStatus{Host: h.Name, Err: err})
				return
			}
			out = append(out, st...)
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Container < b.Container
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return out, fmt.Errorf("status: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

func (e *Executor) hostStatus(ctx context.Context, h planner.Host, all bool) ([]ContainerStatus, error) {
	hc, err := e.host(h)
	if err != nil {
		return nil, err
	}
	cs, err := listRole(ctx, hc.docker, "", "")
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", h.Name, err)
	}
	var out []ContainerStatus
	for _, c := range cs {
		if !all && c.State != "running" && c.State != "restarting" && c.State != "paused" {
			continue
		}
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		st := ContainerStatus{
			Host: h.Name, Service: c.Labels[LabelService], Role: c.Labels[LabelRole],
			Version: c.Labels[LabelVersion], Commit: c.Labels[LabelCommit],
			Container: name, State: c.State,
		}
		if c.State == "running" {
			if info, err := hc.docker.ContainerInspect(ctx, c.ID); err == nil && info.State != nil && info.State.Health != nil {
				st.Health = info.State.Health.Status
			}
		}
		out = append(out, st)
	}
	return out, nil
}
