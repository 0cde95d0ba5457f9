package campaign

import (
	"strings"
	"testing"
)

// Every data error says what is wrong and where, in words for marketing,
// never the JSON decoder's own.
func TestParseDataReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`{screen: "sale"}`, []string{`at character 2 ("{»screen: \"sale\"}")`, `every name must be in double quotes`, `a correct example: {"screen": "sale", "id": 42}`}},
		{`{"screen" "sale"}`, []string{"at character 11", "a colon must follow each name"}},
		{`{"a": "b" "c": 1}`, []string{"at character 11", "a comma or a closing } must follow each value"}},
		{`{"a": sale}`, []string{"at character 7", "a value must be text in double quotes"}},
		{`{"émoji 🎉": x}`, []string{"at character 13", `"{\"émoji 🎉\": »x}"`}},
		{`{"screen": "sale"`, []string{"it ends too early, a closing } or \" is missing"}},
		{`["a"]`, []string{"data must be a JSON object of names and values like", "not a JSON array"}},
		{`null`, []string{"not null: set the column to NULL (no quotes)"}},
		{`{"a":"b"} x`, []string{"data has text after the JSON object, at character 11", "remove it"}},
	} {
		_, err := ParseData(tc.in)
		if err == nil {
			t.Errorf("ParseData(%q) = nil error", tc.in)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseData(%q) = %q\nlacks %q", tc.in, err, w)
			}
		}
		for _, internal := range []string{"invalid character", "looking for beginning", "unexpected end of JSON"} {
			if strings.Contains(err.Error(), internal) {
				t.Errorf("ParseData(%q) = %q: speaks Go's JSON decoder (%q)", tc.in, err, internal)
			}
		}
	}
	if m, err := ParseData(` {"screen": "sale", "n": {"a": [1]}} `); err != nil || len(m) != 2 {
		t.Fatalf("valid data = %v, %v", m, err)
	}
}
