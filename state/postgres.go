package state

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bosunhq/bosun/migrations"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Postgres is the store in a PostgreSQL database, through a pgx pool.
// Several daemon replicas may share one database: locks and delivery
// de-duplication are single atomic statements, and migrations are serialised
// by an advisory lock. Tables live in the first schema of the connection's
// search_path (a search_path DSN parameter picks another schema).
type Postgres struct {
	sqlStore
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the PostgreSQL database named by dsn (a URL or
// key=value connection string, as pgx takes it) and applies the migrations.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	pool, db, where, err := openPostgresDB(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := migrations.Apply(ctx, db, migrations.Postgres); err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("open postgres state %s: %w", where, err)
	}
	return &Postgres{sqlStore: sqlStore{db: db, dialect: migrations.Postgres}, pool: pool}, nil
}

// openPostgresDB connects, unmigrated; where names the database for
// messages, without a password.
func openPostgresDB(ctx context.Context, dsn string) (*pgxpool.Pool, *sql.DB, string, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error names the DSN with its password masked.
		return nil, nil, "", fmt.Errorf("open postgres state: %w", err)
	}
	where := fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("open postgres state %s: %w", where, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		pool.Close()
		return nil, nil, "", fmt.Errorf("open postgres state %s: %w", where, err)
	}
	return pool, db, where, nil
}

// Pool returns the store's pgx pool, e.g. for River's riverpgxv5 driver.
// The store owns it: do not close it.
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

// DB returns a database/sql handle over the pool. The store owns it.
func (p *Postgres) DB() *sql.DB { return p.db }

// Close closes the database handle and the pool.
func (p *Postgres) Close() error {
	err := p.db.Close()
	p.pool.Close()
	return err
}
