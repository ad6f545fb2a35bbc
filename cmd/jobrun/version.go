package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

const (
	versionSynopsis = "usage: jobrun version [-json]"
	versionDoc      = `Version prints the version of jobrun the command was built from, as Go recorded it
in the binary, and the Go version and platform it was built with. A binary
installed with "go install github.com/jobrun/jobrun/cmd/jobrun@v1.2.0" is v1.2.0;
one built from a checkout is "(devel)", with the commit when Go recorded it (and
"modified" if the checkout had changes).
`
)

// modulePath is the module the command belongs to.
const modulePath = "github.com/jobrun/jobrun"

// versionInfo is what version prints.
type versionInfo struct {
	Version  string `json:"version"`            // the module version, "(devel)" from a checkout
	Commit   string `json:"commit,omitempty"`   // the VCS revision of a checkout, if recorded
	Modified bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("version", versionSynopsis, versionDoc, args, stdout, stderr)
	if _, err := c.parse(); err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	v := buildVersion(bi, ok)
	if *c.json {
		return c.print(v)
	}
	fmt.Fprintln(stdout, v)
	return nil
}

// buildVersion reads the version from the binary's build information, if ok.
func buildVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: "(devel)", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if !ok {
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	mod := &bi.Main
	if mod.Path != modulePath {
		// Built as a dependency of another main module.
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				mod = d
				if d.Replace != nil {
					mod = d.Replace
				}
				break
			}
		}
	}
	if mod.Version != "" {
		v.Version = mod.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "GOOS":
			v.OS = s.Value
		case "GOARCH":
			v.Arch = s.Value
		}
	}
	return v
}

// String is the line version prints: "jobrun v1.2.0 (go1.26.0 linux/amd64)", or for
// a checkout "jobrun (devel) commit 1a2b3c4d5e6f, modified (go1.26.0 linux/amd64)".
func (v versionInfo) String() string {
	s := "jobrun " + v.Version
	if v.Commit != "" {
		s += " commit " + v.Commit[:min(len(v.Commit), 12)]
		if v.Modified {
			s += ", modified"
		}
	}
	return fmt.Sprintf("%s (%s %s/%s)", s, v.Go, v.OS, v.Arch)
}
