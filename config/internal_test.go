package config

import "testing"

func TestSuggest(t *testing.T) {
	t.Parallel()
	keys := append(append(append([]string{}, appKeys...), apnsKeys...), fcmKeys...)
	tests := map[string]string{
		"bundleid":        "bundle_id",
		"Bundle-ID":       "bundle_id",
		"bundle":          "bundle_id",
		"enviroment":      "environment",
		"keyid":           "key_id",
		"teamid":          "team_id",
		"auth_key":        "auth_key_path",
		"batchsize":       "batch_size",
		"service_account": "service_account_file",
		"projectid":       "project_id",
		"x":               "",
		"colour":          "",
		"":                "",
	}
	for in, want := range tests {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3}, {"teamid", "temid", 1}} {
		if got := levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
