package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/store"
)

// Processes renewing the provider token at once, each with its own
// connection pool, mint exactly one: the others wait on the row lock and
// keep the new token.
func TestShareTokenMintsOnce(t *testing.T) {
	t.Parallel()
	o := dbtest.Options(t)
	var stores []*store.Store
	for i := range 4 {
		st, err := store.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if i == 0 {
			if _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		stores = append(stores, st)
	}
	issued := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	var mints atomic.Int32
	share := func(st *store.Store, keep func(string, time.Time) bool) (string, time.Time, error) {
		return st.ShareToken(ctx, "TEAM", "KEY", keep, func() (string, time.Time, error) {
			n := mints.Add(1)
			return fmt.Sprintf("jwt-%d", n), issued.Add(time.Duration(n) * time.Minute), nil
		})
	}
	renew := func(before string) func(string, time.Time) bool {
		return func(jwt string, _ time.Time) bool { return jwt != before }
	}
	for round, before := range []string{"", "jwt-1"} {
		var wg sync.WaitGroup
		got := make([]string, 16)
		for i := range got {
			wg.Go(func() {
				jwt, _, err := share(stores[i%len(stores)], renew(before))
				if err != nil {
					t.Error(err)
				}
				got[i] = jwt
			})
		}
		wg.Wait()
		want := fmt.Sprintf("jwt-%d", round+1)
		for i, g := range got {
			if g != want {
				t.Fatalf("round %d: caller %d got %q, want %q", round, i, g, want)
			}
		}
		if n := mints.Load(); n != int32(round+1) {
			t.Fatalf("round %d: %d mints, want %d", round, n, round+1)
		}
	}
	jwt, at, err := share(stores[0], func(string, time.Time) bool { return true })
	if err != nil || jwt != "jwt-2" || !at.Equal(issued.Add(2*time.Minute)) {
		t.Fatalf("stored token = %q issued %v, %v; want jwt-2 issued %v", jwt, at, err, issued.Add(2*time.Minute))
	}
}
