package jobrun_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDependencies fails if the jobrun package depends, directly or through
// another package, on a client that one of its subpackages wraps: OpenTelemetry
// (otel), Prometheus (metrics), chromedp (the dashboard's browser test), pgx and
// River (the PostgreSQL bench). They are subpackages so that an application pays
// only for what it imports.
func TestCoreDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", "github.com/jobrun/jobrun").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 20 {
		t.Fatalf("go list found %d dependencies, too few to be the package's", len(deps))
	}
	for _, dep := range deps {
		for _, banned := range []string{"go.opentelemetry.io/", "github.com/prometheus/", "github.com/chromedp/",
			"github.com/jackc/", "github.com/riverqueue/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("jobrun depends on %s", dep)
			}
		}
	}
}
