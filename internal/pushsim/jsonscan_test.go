package pushsim

import (
	"bytes"
	"encoding/json"
	"testing"
)

var scanSeeds = []string{
	`{}`,
	` { "a" : 1 , "b":[1,{"c":"]}"}], "d":{"e":null} } `,
	`{"aps":{"alert":"x"},"k":"\"quoted\" \\ back"}`,
	`{"\u0061ps":{},"uni":"héllo","esc":"\u00e9\n"}`,
	`{"n":-1.5e3,"t":true,"f":false,"z":null}`,
	`{"dup":1,"dup":2}`,
	`{"nested":[[[]],{},[{"a":[]}]]}`,
}

// checkMembers compares members with encoding/json on one valid object.
func checkMembers(t *testing.T, doc []byte) {
	t.Helper()
	var want map[string]json.RawMessage
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	got := map[string][]byte{}
	members(trimJSON(doc), func(k string, v []byte) error {
		got[k] = v
		return nil
	})
	if len(got) != len(want) {
		t.Fatalf("%s: members found %d keys, encoding/json %d", doc, len(got), len(want))
	}
	for k, w := range want {
		var a, b bytes.Buffer
		json.Compact(&a, w)
		if err := json.Compact(&b, got[k]); err != nil || a.String() != b.String() {
			t.Errorf("%s: key %q: members %q, encoding/json %q", doc, k, got[k], w)
		}
	}
}

func TestMembersMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range scanSeeds {
		checkMembers(t, []byte(s))
	}
}

func TestHasAPSDictionary(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]bool{
		`{"aps":{}}`:                true,
		` {"x":[1,"aps"],"aps":{}}`: true,
		`{"\u0061ps":{}}`:           true,
		`{"x":{"aps":{}}}`:          false,
		`{"aps":[]}`:                false,
		`{"aps":{}} x`:              false,
		`"aps"`:                     false,
		`{"aps":{},"aps":1}`:        false,
	} {
		if got := hasAPSDictionary([]byte(body)); got != want {
			t.Errorf("hasAPSDictionary(%s) = %v, want %v", body, got, want)
		}
	}
}

func FuzzMembers(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) || trimJSON(doc)[0] != '{' {
			return
		}
		checkMembers(t, doc)
	})
}
