package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// cliCase is one command line, the exit code it must give and substrings its output
// must hold (if not empty).
type cliCase struct {
	args         []string
	code         int
	stdout, errs string
}

// runCases runs each command line in-process, as main would, and checks it.
func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, &stderr)
			}
			if tc.stdout != "" {
				mustContain(t, stdout.String(), tc.stdout)
			}
			if tc.errs != "" {
				mustContain(t, stderr.String(), tc.errs)
			}
		})
	}
}

// TestPackageDocListsCommands keeps the package doc's lists of commands the same as
// the usage's.
func TestPackageDocListsCommands(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(src), "package main")
	var usage bytes.Buffer
	printUsage(&usage)
	for line := range strings.Lines(usage.String()) {
		if strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "\tjobrun ") {
			if want := "//" + line; !strings.Contains(doc, want) {
				t.Errorf("the package doc lacks the usage's line %q", want)
			}
		}
	}
}
