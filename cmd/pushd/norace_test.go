//go:build !race

package main

// raceEnabled reports whether this test binary was built with -race; the
// pushd binary the end-to-end tests run is built the same way.
const raceEnabled = false
