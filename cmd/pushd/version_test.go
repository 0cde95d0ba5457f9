package main

import (
	"runtime/debug"
	"testing"
)

// pushd version names the build: the Makefile's stamp, else the module
// version, else the commit, never a bare "dev" when the build knows more.
func TestBuildVersion(t *testing.T) {
	t.Parallel()
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-03T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		stamped string
		bi      debug.BuildInfo
		want    string
	}{
		{"v1.4.0-3-gabc1234", debug.BuildInfo{GoVersion: "go1.26.8", Settings: vcs}, "v1.4.0-3-gabc1234 go1.26.8"},
		{"dev", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0 go1.26.8"},
		{"dev", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			"git 0123456789ab-dirty of 2026-12-03T10:00:00Z go1.26.8"},
		{"dev", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "dev go1.26.8"},
	} {
		if got := buildVersion(tc.stamped, &tc.bi); got != tc.want {
			t.Errorf("buildVersion(%q, %+v) = %q, want %q", tc.stamped, tc.bi.Main, got, tc.want)
		}
	}
}
