package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// SyncArgs is the job that brings a repository's servers to the head of its
// tracked branch. SHA is the commit that caused it, for logs and to absorb
// repeated deliveries: the job deploys whatever the branch points at when it
// runs, so pushes that arrive during a rollout do not deploy one by one —
// the next run goes straight to the newest commit. Pushes coalesce per
// repository (see Daemon.insertSync): while a sync of the repository waits
// to start, a push queues nothing. Runs of one repository are serialised by
// a lock in the store (see Daemon.workSync), across processes too.
type SyncArgs struct {
	Repo   string `json:"repo" river:"unique"`
	SHA    string `json:"sha" river:"unique"`
	Reason string `json:"reason"` // "push (delivery …)", "head", …
	// Actor is the person or script that asked for the sync (the
	// dashboard's sync action); "" for pushes and polls.
	Actor string `json:"actor,omitempty"`
	// Asked is when the actor asked (Unix nanoseconds): each request is its
	// own job, not a copy of a running one.
	Asked int64 `json:"asked,omitempty" river:"unique"`
	// PushedAt is when the push webhook that asked for it arrived; zero
	// for other syncs.
	PushedAt time.Time `json:"pushed_at,omitzero"`
}

// Kind is River's job kind.
func (SyncArgs) Kind() string { return "bosun_sync" }

// A sync's Reason, besides "push (delivery ID)": the watcher saw a new
// head, or the head when the repository was (re)started.
const (
	reasonNewHead   = "new head"
	reasonStartHead = "head at start"
)

// InsertOpts makes a sync unique per repository and commit among jobs not
// yet finished, so a redelivered push queues nothing even when it reaches
// another replica at the same moment.
func (SyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: unfinishedStates}}
}

// PlanPRArgs is the job that plans a pull request's head and reports it.
type PlanPRArgs struct {
	Repo       string `json:"repo" river:"unique"`
	PR         int    `json:"pr" river:"unique"`
	HeadSHA    string `json:"head_sha" river:"unique"`
	BaseBranch string `json:"base_branch"`
	// Title, Author and URL are the pull request's, for the dashboard's
	// list of open pull requests.
	Title  string `json:"title,omitempty"`
	Author string `json:"author,omitempty"`
	URL    string `json:"url,omitempty"`
}

// Kind is River's job kind.
func (PlanPRArgs) Kind() string { return "bosun_plan_pr" }

// InsertOpts makes a plan unique per pull request head among unfinished jobs,
// so a redelivered webhook plans once; a new head plans again and its
// comment replaces the older one.
func (PlanPRArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: unfinishedStates}}
}

// unfinishedStates are the states of a job that has not finished (River
// requires all of them in ByState).
var unfinishedStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// waitingStates are the states of a job that has not started its work yet
// (a snoozed or failed job starts again from the beginning).
var waitingStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// retryPolicy spaces a failed job's attempts 5 s × 2^(attempt-1) apart,
// at most 5 minutes: an unreachable host or a forge outage is retried soon,
// then without hammering (with MaxAttempts 10, for about 25 minutes).
// River's default (attempt⁴ seconds) waits 81 s already before the fourth.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	wait := 5 * time.Second << min(max(job.Attempt-1, 0), 6)
	return time.Now().Add(min(wait, 5*time.Minute))
}

// Queue is the part of River's client the daemon uses, independent of the
// driver's transaction type.
type Queue interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	// Rescue makes running jobs whose worker is gone available again, or
	// discards those out of attempts, as River's own rescuer does; a job
	// attempted at or after horizon (started again meanwhile) is left
	// alone.
	Rescue(ctx context.Context, jobs []*rivertype.JobRow, reason string, horizon time.Time) error
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// riverQueue is River's client with the rescue River does not offer for one
// job: its JobRescuer picks jobs only by age (RescueStuckJobsAfter), which
// cannot tell a long rollout from one whose daemon died.
type riverQueue[TTx any] struct {
	*river.Client[TTx]
	driver riverdriver.Driver[TTx]
}

func (q *riverQueue[TTx]) Rescue(ctx context.Context, jobs []*rivertype.JobRow, reason string, horizon time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	p := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	for _, j := range jobs {
		errData, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(j.Attempt, 0), Error: reason})
		if err != nil {
			return err
		}
		st, finalized := rivertype.JobStateAvailable, (*time.Time)(nil)
		if j.Attempt >= j.MaxAttempts {
			st, finalized = rivertype.JobStateDiscarded, &now
		}
		p.ID = append(p.ID, j.ID)
		p.Error = append(p.Error, errData)
		p.FinalizedAt = append(p.FinalizedAt, finalized)
		p.ScheduledAt = append(p.ScheduledAt, now)
		p.State = append(p.State, string(st))
	}
	if _, err := q.driver.GetExecutor().JobRescueMany(ctx, p); err != nil {
		return fmt.Errorf("rescue jobs: %w", err)
	}
	return nil
}

// NewQueue migrates River's tables and makes a client working the given
// workers, on SQLite or PostgreSQL alike.
func NewQueue[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], workers *river.Workers, concurrency int, log *slog.Logger) (Queue, error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("queue migrations: %w", err)
	}
	// Replicas starting together race to migrate; the loser's next try
	// finds the tables made.
	for attempt := 1; ; attempt++ {
		_, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err == nil {
			break
		}
		if attempt == 5 || ctx.Err() != nil {
			return nil, fmt.Errorf("migrate queue tables: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
		}
	}
	c, err := river.NewClient(driver, &river.Config{
		Logger:  log,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}},
		Workers: workers,
		// A rollout can be long; River must not rescue a live one as stuck.
		// A job whose daemon died is rescued by the daemon's own rescuer
		// when its lease in the store runs out (Daemon.rescue); River's,
		// by age alone, is the backstop.
		JobTimeout:           -1,
		RescueStuckJobsAfter: 2 * time.Hour,
		RetryPolicy:          retryPolicy{},
		// SQLite has no LISTEN/NOTIFY: River polls, and a push should not
		// wait long for its job. The poll is one indexed query.
		FetchPollInterval: 25 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("queue client: %w", err)
	}
	return &riverQueue[TTx]{Client: c, driver: driver}, nil
}
