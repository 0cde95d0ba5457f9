package config

import (
	"testing"

	"github.com/pushd/pushd/internal/didyoumean"
)

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
		if got := didyoumean.Nearest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
