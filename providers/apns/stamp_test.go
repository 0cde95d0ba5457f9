package apns

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// WithValue gives the same payload as preparing the notification with the
// value in its data, and shares the headers.
func TestWithValueMatchesPrepare(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	n := pushd.Notification{Title: "Sale", Body: "30% off", Data: map[string]json.RawMessage{"screen": json.RawMessage(`"sale"`)},
		CollapseID: "c1", Expiration: time.Unix(1_900_000_000, 0)}
	base, err := c.Prepare(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.WithValue(base, "push_id", "AbC-_9")
	if err != nil {
		t.Fatal(err)
	}
	n.Data["push_id"] = json.RawMessage(`"AbC-_9"`)
	want, _ := c.Prepare(n)
	var a, b map[string]any
	if err := json.Unmarshal(got.(*prepared).payload, &a); err != nil {
		t.Fatalf("%s: %v", got.(*prepared).payload, err)
	}
	json.Unmarshal(want.(*prepared).payload, &b)
	if aj, bj := mustJSON(a), mustJSON(b); aj != bj {
		t.Errorf("WithValue %s, Prepare %s", aj, bj)
	}
	if got.(*prepared).hs != base.(*prepared).hs {
		t.Error("the headers are not shared")
	}
	big := pushd.Notification{Body: strings.Repeat("x", MaxPayloadSize-40)}
	bp, err := c.Prepare(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WithValue(bp, "push_id", strings.Repeat("A", 30)); !errors.Is(err, providers.ErrPayloadTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
