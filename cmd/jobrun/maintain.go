package main

// The maintenance commands on a database file: backup, compact and check.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/jobrun/jobrun"
)

const (
	backupSynopsis = "usage: jobrun backup (FILE | -url URL) DEST [-force] [-json]"
	backupDoc      = `Backup writes a consistent copy of FILE to DEST: a jobrun file holding every job
as of one moment, which applications and every command open as they do FILE. DEST
must not exist, unless -force: then it is replaced once the copy is complete and
synced, so a backup that fails leaves it as it was. With -url, the copy of the
running application's file comes through its dashboard (GET /api/backup) while its
jobs keep running, and DEST is written here; a dashboard that hides args
(dashboard.WithRedactedArgs) refuses it, as the copy holds them all.

` + readFileDoc

	compactSynopsis = "usage: jobrun compact FILE [-json]"
	compactDoc      = `Compact rewrites FILE without its free pages, so that a file that grew during a
backlog shrinks back: bbolt reuses the pages that deleted jobs free, but never gives
them back to the file system. It copies FILE to FILE.compact next to it, which takes
free disk space for a copy, then replaces FILE with it. It prints the sizes before
and after. It takes no -url: it rewrites the file itself, which needs the
application stopped.

` + manageFileDoc

	checkSynopsis = "usage: jobrun check (FILE | -url URL) [-repair] [-json]"
	checkDoc      = `Check recounts the jobs of every queue in each state from the indexes of FILE and
compares them with the counters that stats prints, which every change keeps. They
disagree only if something other than jobrun changed the file. Without -repair it
opens FILE read-only, lists the counters that disagree and exits with status 1 if
there are any; with -repair it rewrites those counters, in the transaction of the
recount, and writes nothing else.

FILE must exist; it is not created. Without -repair, the command leaves FILE byte
for byte as it was. With -repair, it runs none of the runner's services on the
file (no retention, cron fires, promotion or crash recovery: jobs found running
stay as they are until the application's next start), and needs the file to
itself. While an application has the file open, the command fails and says so:
use -url then, without -repair, which needs the file.

` + urlDoc + `
` + exitDoc
)

// backup

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("backup", backupSynopsis, backupDoc, args, stdout, stderr)
	force := c.fs.Bool("force", false, "replace DEST if it exists")
	pos, err := c.parse("FILE", "DEST")
	if err != nil {
		return err
	}
	file, dest := pos[0], pos[1]
	if fi, err := os.Stat(file); err == nil && !c.remote() {
		if di, err := os.Stat(dest); err == nil && os.SameFile(fi, di) {
			return c.usage(fmt.Errorf("DEST %s is FILE itself", dest))
		}
	}
	return c.result(c.open(readAccess, func(s store) error {
		n, err := writeBackup(ctx, s, dest, *force)
		if err != nil {
			return err
		}
		if *c.json {
			return c.print(map[string]any{"file": file, "backup": dest, "bytes": n})
		}
		fmt.Fprintf(stdout, "Wrote a backup of %s to %s (%s).\n", file, dest, formatBytes(n))
		return nil
	}))
}

// writeBackup writes s's backup to dest and syncs it. Without force, dest must not
// exist. With force, the backup goes to a temporary file next to dest that replaces
// it once complete, so a failure leaves an existing dest as it was.
func writeBackup(ctx context.Context, s store, dest string, force bool) (n int64, err error) {
	var f *os.File
	if force {
		f, err = os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.tmp")
	} else {
		f, err = os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return 0, &worded{fmt.Sprintf("%s exists; -force replaces it", dest), err}
		}
	}
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if n, err = s.Backup(ctx, f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	if force {
		if err = os.Rename(f.Name(), dest); err != nil {
			return n, err
		}
	}
	syncDir(filepath.Dir(dest))
	return n, nil
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// compact

func runCompact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("compact", compactSynopsis, compactDoc, args, stdout, stderr)
	c.refusesURL("rewrites the file")
	pos, err := c.parse("FILE")
	if err != nil {
		return err
	}
	file := pos[0]
	return c.result(withFile(file, manageAccess, func(r *jobrun.Runner) error {
		before, err := fileSize(file)
		if err != nil {
			return err
		}
		if err := r.Compact(ctx); err != nil {
			return err
		}
		after, err := fileSize(file)
		if err != nil {
			return err
		}
		if *c.json {
			return c.print(map[string]any{"file": file, "bytes_before": before, "bytes_after": after})
		}
		fmt.Fprintf(stdout, "Compacted %s from %s to %s.\n", file, formatBytes(before), formatBytes(after))
		return nil
	}))
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// formatBytes is n for people: bytes under 1 KiB, else KiB, MiB or GiB with one
// decimal.
func formatBytes(n int64) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/(1<<10), "KiB"
	for _, u := range []string{"MiB", "GiB"} {
		if v < 1<<10 {
			break
		}
		v, unit = v/(1<<10), u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// check

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("check", checkSynopsis, checkDoc, args, stdout, stderr)
	repair := c.fs.Bool("repair", false, "rewrite the counters that disagree with the recount")
	pos, err := c.parse("FILE")
	if err != nil {
		return err
	}
	if *repair && c.remote() {
		return c.refuseURL("check -repair rewrites the counters of the file")
	}
	file := pos[0]
	acc := readAccess
	if *repair {
		acc = manageAccess
	}
	return c.result(c.open(acc, func(s store) error {
		mm, err := s.checkCounts(ctx, *repair)
		if err != nil {
			return err
		}
		if mm == nil {
			mm = []jobrun.CountMismatch{}
		}
		if *c.json {
			if err := c.print(map[string]any{"mismatches": mm, "repaired": *repair && len(mm) > 0}); err != nil {
				return err
			}
		} else if len(mm) == 0 {
			fmt.Fprintf(stdout, "The counts of %s agree with its jobs.\n", file)
		} else {
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprint(tw, "QUEUE\tSTATE\tCOUNTER\tJOBS\n")
			for _, m := range mm {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", m.Queue, m.State, m.Stored, m.Actual)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if *repair {
				fmt.Fprintf(stdout, "Repaired %d %s: they now hold the number of jobs.\n", len(mm), plural(len(mm), "counter"))
			}
		}
		if len(mm) > 0 && !*repair {
			return &worded{fmt.Sprintf("%d %s of %s disagree with its jobs; jobrun check -repair rewrites them",
				len(mm), plural(len(mm), "counter"), file), nil}
		}
		return nil
	}))
}
