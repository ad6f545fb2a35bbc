// Package pgtest starts throwaway PostgreSQL clusters from the server binaries the
// machine has (Debian's postgresql package), for tests and benchmarks: a cluster in
// a temporary directory, listening on 127.0.0.1 on a free port, stopped and removed
// by Stop. No container and no download: where the binaries are missing, Start
// returns an error wrapping ErrNoServer, and a test says so in one line and skips.
//
// initdb refuses to run as root: a root process runs the server binaries as the
// postgres user (which Debian's package creates), the directory given to it.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// ErrNoServer is the error of Start where the server binaries, or the user to run
// them as, are missing.
var ErrNoServer = errors.New("pgtest: no PostgreSQL server here")

// Cluster is a running throwaway cluster; its superuser is "jobrun", trusted on
// 127.0.0.1 without a password.
type Cluster struct {
	dir  string // removed by Stop
	bin  string // the directory of initdb and pg_ctl
	port int
	cred *syscall.Credential // nil: run as this process's user

	watchdog *exec.Cmd // stops the server if this process dies without Stop
}

// Start creates and starts a cluster. Its server runs with PostgreSQL's defaults
// (fsync and synchronous_commit on), so what is measured on it is durable.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := serverBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("%w: running as root, and no postgres user to run initdb as: %v", ErrNoServer, err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if c.dir, err = os.MkdirTemp("", "jobrun-pg-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return nil, err
		}
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	data := filepath.Join(c.dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-U", "jobrun", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.dir)
	if err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "server.log"), "-o", opts, "-w", "start"); err != nil {
		return nil, err
	}
	if err := c.watch(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// watch starts a shell that outlives this process to stop the server and remove
// its directory once this process is gone: a test binary that panics (a timeout)
// or is killed runs no Stop, and the server would run on. It looks every second;
// /proc says whether the process lives, as kill -0 cannot from another user.
func (c *Cluster) watch() error {
	script := fmt.Sprintf(`while [ -d /proc/%d ]; do sleep 1; done; %s -D %s -m immediate stop; rm -rf %s`,
		os.Getpid(), filepath.Join(c.bin, "pg_ctl"), filepath.Join(c.dir, "data"), c.dir)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start the watchdog: %w", err)
	}
	c.watchdog = cmd
	return nil
}

// DSN is the connection string of database on the cluster.
func (c *Cluster) DSN(database string) string {
	return fmt.Sprintf("postgres://jobrun@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// Port is the TCP port the server listens on, on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Stop stops the server at once and removes the cluster's directory.
func (c *Cluster) Stop() error {
	if c.watchdog != nil {
		c.watchdog.Process.Kill()
		c.watchdog.Wait()
	}
	var err error
	if _, serr := os.Stat(filepath.Join(c.dir, "data", "postmaster.pid")); serr == nil {
		err = c.run(context.Background(), "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// run runs one of the server binaries, as the cluster's user.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", name, err, out.Bytes())
	}
	return nil
}

// serverBinaries finds the directory of initdb and pg_ctl: on the PATH, or in
// Debian's /usr/lib/postgresql/VERSION/bin, the newest version.
func serverBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: no initdb and pg_ctl on the PATH or in /usr/lib/postgresql (Debian: apt-get install postgresql)", ErrNoServer)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
