package jobrun_test

import (
	"bytes"
	"os"
	"testing"
)

// TestReadmeQuickStart keeps the README's quick start identical to
// examples/quickstart/main.go, which the build compiles and vets.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	block := []byte("```go\n" + string(program) + "```\n")
	if !bytes.Contains(readme, block) {
		t.Fatal("README.md's quick start differs from examples/quickstart/main.go: copy the file into the README's go block")
	}
}
