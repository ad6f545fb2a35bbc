package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// TestCodes: every code stands for one sentinel, which gives the code back (but
// "too_large", which is ErrInvalid's second code); an error wrapping none has none.
func TestCodes(t *testing.T) {
	for _, c := range codes {
		err := fmt.Errorf("op: %w: detail", c.err)
		if got := Sentinel(c.code); got != c.err {
			t.Errorf("Sentinel(%q) = %v, want %v", c.code, got, c.err)
		}
		if got := Code(err); got != c.code && c.code != "too_large" {
			t.Errorf("Code(%v) = %q, want %q", err, got, c.code)
		}
	}
	if Code(errors.New("other")) != "" || Sentinel("forbidden") != nil || Sentinel("") != nil {
		t.Error("codes for what is no sentinel")
	}
}

func TestArgs(t *testing.T) {
	for raw, want := range map[string]string{"": "{}", "null": "{}", " null ": "{}", `{"a": 1}`: `{"a":1}`, "[1, 2]": "[1,2]", `"s"`: `"s"`} {
		b, err := json.Marshal(Args{Name: "k", JSON: json.RawMessage(raw)})
		if err != nil || string(b) != want {
			t.Errorf("Args %q encodes to %s, %v; want %s", raw, b, err, want)
		}
	}
}

// TestJSONValue: a stored value is shown as is, null when empty, and as a string
// when it is not JSON.
func TestJSONValue(t *testing.T) {
	for in, want := range map[string]string{"": "", `{"a":1}`: `{"a":1}`, `"s"`: `"s"`, "{broken": `"{broken"`, "\xff": `"\ufffd"`} {
		if got := string(JSONValue(json.RawMessage(in))); got != want {
			t.Errorf("JSONValue(%q) = %s, want %s", in, got, want)
		}
	}
}
