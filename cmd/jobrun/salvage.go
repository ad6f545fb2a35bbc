package main

// salvage copies the readable jobs of a damaged database file into a new one.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/jobrun/jobrun"
)

const (
	salvageSynopsis = "usage: jobrun salvage DAMAGED NEW [-json]"
	salvageDoc      = `Salvage copies every job that can be read from DAMAGED, a database file that
jobrun says is damaged (a truncated file, or pages that cannot be read), into NEW,
a file it creates. Each job keeps its ID, args, attempts, errors, result and
state; jobs that were running are ready again, without spending an attempt. The
indexes and counters are built again from the jobs, and the cron schedules and
paused queues that can be read are copied. A job whose ID is found but whose
record cannot be read is copied as a failed job that says so.

Salvage never writes to DAMAGED, and it needs the file to itself: stop the
application first (it takes no -url). NEW must not exist. Salvage prints how many jobs it copied,
how many were lost and the IDs of the jobs on pages it could not read.

Then check NEW (jobrun stats NEW, jobrun list NEW) and, with the application
stopped, put it in DAMAGED's place; keep DAMAGED until NEW is known to be good.
If there is a recent backup of the file, restoring it may keep more than this.

Exit code 0 if NEW was written, even if jobs were lost; 1 if nothing could be
salvaged (the file's header pages, or the pages that lead to its jobs, cannot be
read) or NEW could not be written; 2 for bad usage.
`
)

func runSalvage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("salvage", salvageSynopsis, salvageDoc, args, stdout, stderr)
	c.refusesURL("reads a damaged file")
	pos, err := c.parse("DAMAGED", "NEW")
	if err != nil {
		return err
	}
	damaged, out := pos[0], pos[1]
	rep, err := jobrun.Salvage(ctx, damaged, out)
	switch {
	case err == nil:
	case errors.Is(err, jobrun.ErrLocked):
		err = &errInUse{damaged}
	case errors.Is(err, jobrun.ErrCorrupt), errors.Is(err, jobrun.ErrSchema):
		err = &worded{damaged + ": " + message(err), err}
	case errors.Is(err, fs.ErrExist):
		err = &worded{out + " exists: salvage writes a new file, give another NEW", err}
	case errors.Is(err, fs.ErrNotExist):
		err = &worded{damaged + ": no such file", err}
	}
	if err != nil {
		return c.result(err)
	}
	if *c.json {
		return c.print(rep)
	}
	fmt.Fprintf(stdout, "Salvaged %d %s and %d %s from %s into %s.\n", rep.Jobs, plural(rep.Jobs, "job"),
		rep.Schedules, plural(rep.Schedules, "schedule"), damaged, out)
	if rep.Unreadable > 0 {
		they := "they are"
		if rep.Unreadable == 1 {
			they = "it is"
		}
		fmt.Fprintf(stdout, "%d more %s had an unreadable record: %s failed in %s, with the reason.\n",
			rep.Unreadable, plural(rep.Unreadable, "job"), they, out)
	}
	switch {
	case rep.Lost > 0:
		fmt.Fprintf(stdout, "Lost %d %s that %s counted.\n", rep.Lost, plural(rep.Lost, "job"), damaged)
	case rep.Lost < 0:
		fmt.Fprintln(stdout, "The number of jobs lost is unknown: the file's counters cannot be read.")
	}
	if len(rep.Damage) > 0 {
		fmt.Fprintln(stdout, "Could not read:")
		for _, d := range rep.Damage {
			fmt.Fprintf(stdout, "  %s\n", d)
		}
	}
	fmt.Fprintf(stdout, "Check it with jobrun stats %s, then put it in place of %s while the application is stopped.\n",
		shellQuote(out), damaged)
	return nil
}
