package pushd

import (
	"math"
	"testing"
)

// Over 100k consecutive user ids the split follows the weights and the
// holdout share, within five standard deviations; and it is stable.
func TestAssignSplit(t *testing.T) {
	t.Parallel()
	variants := []Variant{{Name: "A", Weight: 50}, {Name: "B", Weight: 30}, {Name: "C", Weight: 20}}
	const n = 100_000
	for _, campaign := range []int64{1, 42, 1 << 40} {
		count := map[string]int{}
		held := 0
		for u := int64(1); u <= n; u++ {
			name, out := Assign(campaign, u, 10, variants)
			if again, out2 := Assign(campaign, u, 10, variants); again != name || out2 != out {
				t.Fatalf("user %d: %q/%v then %q/%v", u, name, out, again, out2)
			}
			if out {
				held++
				continue
			}
			count[name]++
		}
		check := func(what string, got int, p float64, of int) {
			t.Helper()
			want := p * float64(of)
			if sd := math.Sqrt(float64(of) * p * (1 - p)); math.Abs(float64(got)-want) > 5*sd {
				t.Errorf("campaign %d %s: %d, want %.0f ± %.0f", campaign, what, got, want, 5*sd)
			}
		}
		check("held out", held, 0.10, n)
		for _, v := range variants {
			check("variant "+v.Name, count[v.Name], float64(v.Weight)/100, n-held)
		}
	}
	if name, out := Assign(1, 1, 0, nil); name != "" || out {
		t.Errorf("no variants, no holdout: %q %v", name, out)
	}
}
