package h2fake

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Recorder is a testing.TB that captures the fake's Errorf reports instead
// of failing the test; everything else goes to the embedded TB. Pass it to
// New to check that the fake reports a violation, or to report violations
// in the test's own words. It is safe for concurrent use.
type Recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

// Errorf records the report.
func (r *Recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// Has reports whether a report recorded so far contains sub.
func (r *Recorder) Has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

// All returns the reports recorded so far, in order.
func (r *Recorder) All() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}
