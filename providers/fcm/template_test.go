package fcm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/content"
	"github.com/pushd/pushd/providers"
)

// TestTemplateSizeCheck: as for APNs, a multi-byte name that fills
// FCM's 4096 bytes of notification and data exactly is prepared, one
// character more is refused.
func TestTemplateSizeCheck(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	ct, err := content.Compile(pushd.Notification{Title: "Hi {{ name }}", Body: strings.Repeat("é", 1000), Templated: true})
	if err != nil {
		t.Fatal(err)
	}
	size := func(name string) (int, error) {
		a, _ := json.Marshal(map[string]string{"name": name})
		n, _, err := ct.Render(content.User{ID: 1, Attributes: a})
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Prepare(n)
		if err != nil {
			return 0, err
		}
		return p.PayloadSize(), nil
	}
	base, err := size("")
	if err != nil {
		t.Fatal(err)
	}
	room := MaxPayload - base
	fits := strings.Repeat("日", room/3) + strings.Repeat("a", room%3)
	if n, err := size(fits); err != nil || n != MaxPayload {
		t.Errorf("a name that fills the payload exactly: size %d, %v; want %d", n, err, MaxPayload)
	}
	if _, err := size(fits + "日"); !errors.Is(err, providers.ErrPayloadTooLarge) {
		t.Errorf("3 bytes over: %v, want ErrPayloadTooLarge", err)
	}
}
